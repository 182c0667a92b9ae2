//! The one way to write an error with its causes, for logs and responses.

/// An error with its causes ("error sending request ...: tcp connect error: Connection
/// refused"), each cause once.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Layer {
        text: &'static str,
        #[source]
        cause: Option<Box<Layer>>,
    }

    fn layer(text: &'static str, cause: Option<Layer>) -> Layer {
        Layer {
            text,
            cause: cause.map(Box::new),
        }
    }

    #[test]
    fn causes_follow_the_error_each_once() {
        let error = layer(
            "error sending request",
            Some(layer(
                "tcp connect error",
                Some(layer("Connection refused", None)),
            )),
        );
        assert_eq!(
            error_chain(&error),
            "error sending request: tcp connect error: Connection refused"
        );
        let repeated = layer(
            "connect: Connection refused",
            Some(layer("Connection refused", None)),
        );
        assert_eq!(error_chain(&repeated), "connect: Connection refused");
    }
}
