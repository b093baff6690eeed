//! One failed AWS API call, reduced to what retrying and reporting need.
//!
//! The SDK's error types are generic per operation; [`ApiError`] keeps the
//! operation name, the AWS error code and message, and whether the failure
//! was in transport (timeouts, connection errors) rather than an answer from
//! AWS. Retry classification (`retry.rs`) works on this type alone, so it can
//! be tested without the SDK. What *to do* about an error lives with the
//! caller; this file only describes it.

use std::error::Error as StdError;
use std::fmt;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use skyplan_engine::ProviderError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    /// The API operation, as AWS names it (`CreateVpc`).
    pub operation: &'static str,
    /// AWS's error code (`InvalidVpcID.NotFound`), when AWS answered with one.
    pub code: Option<String>,
    pub message: String,
    /// HTTP status of AWS's answer; `None` when there was no answer.
    pub status: Option<u16>,
}

impl ApiError {
    #[cfg(test)]
    pub fn new(operation: &'static str, code: Option<&str>, message: impl Into<String>, status: Option<u16>) -> Self {
        ApiError { operation, code: code.map(str::to_string), message: message.into(), status }
    }

    /// A service error as AWS would return it (for tests and synthesized errors).
    #[cfg(test)]
    pub fn service(operation: &'static str, code: &str, message: &str) -> Self {
        ApiError::new(operation, Some(code), message, Some(400))
    }

    pub fn from_sdk<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        match &err {
            SdkError::ServiceError(ctx) => {
                let status = ctx.raw().status().as_u16();
                let e = ctx.err();
                let message = match e.message() {
                    Some(m) => m.to_string(),
                    None => DisplayErrorContext(&err).to_string(),
                };
                ApiError { operation, code: e.code().map(str::to_string), message, status: Some(status) }
            }
            SdkError::ResponseError(ctx) => ApiError {
                operation,
                code: None,
                message: DisplayErrorContext(&err).to_string(),
                status: Some(ctx.raw().status().as_u16()),
            },
            _ => ApiError { operation, code: None, message: DisplayErrorContext(&err).to_string(), status: None },
        }
    }

    pub fn code(&self) -> &str {
        self.code.as_deref().unwrap_or("")
    }

    pub fn has_code(&self, codes: &[&str]) -> bool {
        codes.contains(&self.code())
    }

    /// AWS said the resource the call is about does not exist. Codes differ
    /// by service (`InvalidVpcID.NotFound`, `LoadBalancerNotFound`,
    /// `InvalidLaunchTemplateId.NotFound`, autoscaling's `ValidationError`
    /// "... not found"), hence the loose match.
    pub fn is_not_found(&self) -> bool {
        let code = self.code();
        code.ends_with(".NotFound")
            || code.ends_with("NotFound")
            || code.ends_with("NotFoundException")
            || code.ends_with(".NotFoundException")
            || (code == "ValidationError" && self.message.to_ascii_lowercase().contains("not found"))
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{} failed: {}: {}", self.operation, code, self.message),
            None => write!(f, "{} failed: {}", self.operation, self.message),
        }
    }
}

impl StdError for ApiError {}

impl From<ApiError> for ProviderError {
    fn from(e: ApiError) -> Self {
        ProviderError::new(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_across_services() {
        for code in [
            "InvalidVpcID.NotFound",
            "InvalidLaunchTemplateId.NotFound",
            "InvalidLaunchTemplateName.NotFoundException",
            "LoadBalancerNotFound",
            "NatGatewayNotFound",
        ] {
            assert!(ApiError::service("X", code, "m").is_not_found(), "{code}");
        }
        let asg = ApiError::service("DeleteAutoScalingGroup", "ValidationError", "AutoScalingGroup name not found");
        assert!(asg.is_not_found());
        assert!(!ApiError::service("X", "ValidationError", "bad min size").is_not_found());
        assert!(!ApiError::service("X", "DependencyViolation", "in use").is_not_found());
    }

    #[test]
    fn message_names_operation_and_code() {
        let e = ApiError::service("CreateVpc", "InvalidVpc.Range", "The CIDR '10.0.0.0/8' is invalid.");
        assert_eq!(e.to_string(), "CreateVpc failed: InvalidVpc.Range: The CIDR '10.0.0.0/8' is invalid.");
    }
}
