//! Messengers: how messages leave the station (HTTP, MQTT).

pub(crate) mod http;
pub(crate) mod mqtt;
