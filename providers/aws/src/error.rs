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
    /// The service, as IAM's action prefix (`ec2`), when known: with
    /// `operation` it names the IAM action a denial is about.
    pub service: Option<&'static str>,
    /// Where the request went (`https://ec2.us-east-1.amazonaws.com`), when
    /// known; said when there was no answer.
    pub endpoint: Option<String>,
    /// No connection could be made at all (refused, no such host, connect
    /// timeout), as opposed to a connection lost mid-request: nobody is
    /// there, so `retry.rs` gives up after seconds, not a minute.
    pub unreachable: bool,
    /// Set when the call was retried until its tries ran out: how many
    /// tries over how long, for the message.
    pub gave_up: Option<(u32, std::time::Duration)>,
}

/// AWS's codes for "slow down".
pub(crate) const THROTTLING: &[&str] = &[
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "EC2ThrottledException",
    "SlowDown",
];

/// AWS's codes for "this identity may not call this action".
pub(crate) const DENIED: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnauthorizedAccess",
    "AuthorizationError",
    "Client.UnauthorizedOperation",
];

impl ApiError {
    pub fn new(operation: &'static str, code: Option<&str>, message: impl Into<String>, status: Option<u16>) -> Self {
        ApiError { code: code.map(str::to_string), status, ..ApiError::bare(operation, message.into()) }
    }

    /// A service error as AWS would return it (for tests and synthesized errors).
    #[cfg(test)]
    pub fn service(operation: &'static str, code: &str, message: &str) -> Self {
        ApiError::new(operation, Some(code), message, Some(400))
    }

    fn bare(operation: &'static str, message: String) -> Self {
        ApiError {
            operation,
            code: None,
            message,
            status: None,
            service: None,
            endpoint: None,
            unreachable: false,
            gave_up: None,
        }
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
                    None if e.code().is_none() => unreadable_answer(status),
                    None => DisplayErrorContext(&err).to_string(),
                };
                ApiError {
                    code: e.code().map(str::to_string),
                    status: Some(status),
                    ..ApiError::bare(operation, message)
                }
            }
            SdkError::ResponseError(ctx) => {
                let status = ctx.raw().status().as_u16();
                ApiError { status: Some(status), ..ApiError::bare(operation, unreadable_answer(status)) }
            }
            SdkError::DispatchFailure(failure) => {
                let (message, unreachable) = transport_failure(&err, failure.is_timeout());
                ApiError { unreachable, ..ApiError::bare(operation, message) }
            }
            SdkError::TimeoutError(_) => ApiError::bare(operation, "no answer in time (timed out)".into()),
            _ => ApiError::bare(operation, DisplayErrorContext(&err).to_string()),
        }
    }

    /// The IAM action of the call (`ec2:CreateVpc`), or the bare operation.
    pub fn action(&self) -> String {
        match self.service {
            Some(service) => format!("{service}:{}", self.operation),
            None => self.operation.to_string(),
        }
    }

    pub fn is_denied(&self) -> bool {
        self.has_code(DENIED)
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

/// An answer the SDK could not read (an HTML error page, a truncated
/// body): its status in words, never the SDK's dump of the response.
fn unreadable_answer(status: u16) -> String {
    let reason = match status {
        400 => " Bad Request",
        403 => " Forbidden",
        404 => " Not Found",
        500 => " Internal Server Error",
        502 => " Bad Gateway",
        503 => " Service Unavailable",
        504 => " Gateway Timeout",
        _ => "",
    };
    let hint =
        if status >= 500 { "; AWS (or the endpoint in AWS_ENDPOINT_URL) failed on its side, try again" } else { "" };
    format!("AWS answered HTTP {status}{reason} with no error skyplan could read{hint}")
}

/// What a failure to send a request was, in words (never the SDK's Debug
/// form), and whether no connection could be made at all. The SDK wraps
/// the cause several levels deep (`DispatchFailure` > `ConnectorError` >
/// hyper's connect error > `io::Error`): the innermost `io::Error` says
/// what happened; a connect error or DNS failure anywhere in the chain
/// means nobody answered.
fn transport_failure(err: &(dyn StdError + 'static), timeout: bool) -> (String, bool) {
    let mut io_error: Option<&std::io::Error> = None;
    let mut connect = false;
    let mut source: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = source {
        let text = e.to_string().to_ascii_lowercase();
        if text.contains("connect error") || text.contains("dns error") || text.contains("failed to lookup address") {
            connect = true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            io_error = Some(io);
        }
        source = e.source();
    }
    use std::io::ErrorKind;
    if let Some(io) = io_error {
        if matches!(io.kind(), ErrorKind::ConnectionRefused | ErrorKind::AddrNotAvailable) {
            connect = true;
        }
        let what = match io.kind() {
            ErrorKind::ConnectionRefused => "connection refused".to_string(),
            ErrorKind::ConnectionReset => "connection reset".to_string(),
            ErrorKind::TimedOut => "timed out".to_string(),
            _ => {
                // `Connection refused (os error 111)` -> without the errno.
                let text = io.to_string();
                match text.find(" (os error") {
                    Some(i) => text[..i].to_string(),
                    None => text,
                }
            }
        };
        return (what, connect);
    }
    if timeout {
        return ((if connect { "could not connect in time" } else { "timed out" }).to_string(), connect);
    }
    let text = if connect { "could not connect" } else { "the connection failed before an answer" };
    (text.to_string(), connect)
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_denied() {
            return write!(
                f,
                "AWS denied {} to these credentials ({}: {})\n  help: `skyplan policy SPEC` prints the IAM policy \
                 skyplan needs; attach it to this user or role (`skyplan preflight SPEC` lists every missing action)",
                self.action(),
                self.code(),
                self.message
            );
        }
        if self.code.is_none() && self.status.is_none() {
            let place = match &self.endpoint {
                Some(url) => format!(" at {url}"),
                None => String::new(),
            };
            let tries = match self.gave_up {
                Some((n, took)) => format!(" (tried {n} times over {:.0} s)", took.as_secs_f64()),
                None => String::new(),
            };
            let help = if self.unreachable {
                "\n  help: check the network, the region, and AWS_ENDPOINT_URL if it is set"
            } else {
                ""
            };
            let what = if self.unreachable { "could not reach AWS" } else { "no answer from AWS" };
            return write!(f, "{} failed: {what}{place}: {}{tries}{help}", self.action(), self.message);
        }
        if let (true, Some((n, took))) = (THROTTLING.contains(&self.code()), self.gave_up) {
            return write!(
                f,
                "{} failed: {} kept throttling the requests ({}) for {:.0} s over {n} tries: {}\n  \
                 help: the account's API rate is shared by everything in it; try again later, or lower \
                 skyplan's rate with --rate-limit",
                self.action(),
                self.service.unwrap_or("AWS"),
                self.code(),
                took.as_secs_f64(),
                self.message
            );
        }
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
    fn a_denial_names_the_action_and_where_the_policy_is() {
        let e = ApiError {
            service: Some("ec2"),
            ..ApiError::service(
                "CreateVpc",
                "UnauthorizedOperation",
                "You are not authorized to perform this operation.",
            )
        };
        assert_eq!(
            e.to_string(),
            "AWS denied ec2:CreateVpc to these credentials (UnauthorizedOperation: You are not authorized to perform \
             this operation.)\n  help: `skyplan policy SPEC` prints the IAM policy skyplan needs; attach it to this \
             user or role (`skyplan preflight SPEC` lists every missing action)"
        );
    }

    #[test]
    fn no_answer_names_the_endpoint_never_the_sdk_debug_form() {
        let e = ApiError {
            service: Some("ec2"),
            endpoint: Some("http://127.0.0.1:9".into()),
            unreachable: true,
            gave_up: Some((5, std::time::Duration::from_millis(7400))),
            ..ApiError::new("DescribeVpcs", None, "connection refused", None)
        };
        assert_eq!(
            e.to_string(),
            "ec2:DescribeVpcs failed: could not reach AWS at http://127.0.0.1:9: connection refused (tried 5 times \
             over 7 s)\n  help: check the network, the region, and AWS_ENDPOINT_URL if it is set"
        );
    }

    /// The SDK's dispatch failure, as hyper wraps a refused connection, read
    /// down to the `io::Error`.
    #[test]
    fn a_refused_connection_is_read_from_the_error_chain() {
        #[derive(Debug)]
        struct Connect(std::io::Error);
        impl fmt::Display for Connect {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("tcp connect error")
            }
        }
        impl StdError for Connect {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&self.0)
            }
        }
        let refused = Connect(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(transport_failure(&refused, false), ("connection refused".to_string(), true));
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(transport_failure(&reset, false), ("connection reset".to_string(), false));
    }

    #[test]
    fn an_unreadable_answer_is_its_status_in_words() {
        assert_eq!(
            unreadable_answer(500),
            "AWS answered HTTP 500 Internal Server Error with no error skyplan could read; AWS (or the endpoint in \
             AWS_ENDPOINT_URL) failed on its side, try again"
        );
        assert_eq!(unreadable_answer(404), "AWS answered HTTP 404 Not Found with no error skyplan could read");
    }

    #[test]
    fn message_names_operation_and_code() {
        let e = ApiError::service("CreateVpc", "InvalidVpc.Range", "The CIDR '10.0.0.0/8' is invalid.");
        assert_eq!(e.to_string(), "CreateVpc failed: InvalidVpc.Range: The CIDR '10.0.0.0/8' is invalid.");
    }
}
