//! `message.deployment`: the Deployment as acoupi's JSON (type `deployment`), once per
//! deployment.
//!
//! It remembers in memory which deployments it has announced: a server learns of a
//! deployment when its first recording is analysed, and again after each restart of the
//! station (a "station is up" notice; receivers match deployments by id).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use acoupi_engine::component::{ComponentError, ComponentResult, MessageFactory};
use acoupi_engine::data::{Message, MessageType, ModelOutput};
use acoupi_engine::registry::{BuildContext, BuildError, Built, ComponentConfig};
use uuid::Uuid;

/// A `deployment` message the first time (since the station started) a model output of a
/// deployment comes by: the Deployment as acoupi's JSON (id, name, latitude, longitude,
/// started_on, ended_on).
#[derive(Debug, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentMessageConfig {}

impl ComponentConfig for DeploymentMessageConfig {
    const KIND: &'static str = "message.deployment";

    fn build(&self, _: &BuildContext) -> Result<Built, BuildError> {
        Ok(Built::MessageFactory(Arc::new(DeploymentMessages {
            announced: Mutex::default(),
        })))
    }
}

pub struct DeploymentMessages {
    announced: Mutex<HashSet<Uuid>>,
}

impl MessageFactory for DeploymentMessages {
    fn build(&self, output: &ModelOutput) -> ComponentResult<Vec<Message>> {
        let deployment = &output.recording.deployment;
        let mut announced = self.announced.lock().map_err(|_| {
            ComponentError::Other("the announced-deployments set is poisoned".into())
        })?;
        if announced.contains(&deployment.id) {
            return Ok(Vec::new());
        }
        let content = serde_json::to_string(deployment)
            .map_err(|e| ComponentError::Other(format!("cannot serialise the deployment: {e}")))?;
        announced.insert(deployment.id);
        Ok(vec![
            Message::new(content).with_type(MessageType::Deployment),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::output;
    use acoupi_engine::data::Deployment;

    #[test]
    fn each_deployment_is_announced_once() {
        let factory = DeploymentMessages {
            announced: Mutex::default(),
        };
        let first = output(Vec::new());
        let messages = factory.build(&first).unwrap();
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].message_type, Some(MessageType::Deployment));
        let back: Deployment =
            serde_json::from_str(messages[0].content.as_text().unwrap()).unwrap();
        assert_eq!(back, first.recording.deployment);
        let mut same = output(Vec::new());
        same.recording.deployment = first.recording.deployment.clone();
        assert!(factory.build(&same).unwrap().is_empty());
        // A new deployment (e.g. the station moved) is announced.
        assert_eq!(factory.build(&output(Vec::new())).unwrap().len(), 1);
    }
}
