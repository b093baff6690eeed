//! Reading a Secrets Manager secret's value (GetSecretValue, the seed's
//! only read of a secret): for the secrets kind (its reads, its lost-create
//! and orphan lookups, the join secret's CA hash) and for what needs the
//! cluster's CA (`apiwait.rs`, `skyplan kubeconfig`). A value is held only
//! as long as it takes to use it, never logged or returned as text.

use skyplan_aws_blueprint::bootstrap::ClusterPki;
use skyplan_engine::ProviderError;

use crate::clients::Clients;
use crate::error::ApiError;
use crate::retry::Retry;

/// A secret's value as read: held only as long as it takes to compute what
/// may be kept (dropped, not logged: its Debug is the SDK's redacted one).
pub(crate) enum Held {
    Binary(Vec<u8>),
    Text(String),
}

/// GetSecretValue of `id` (a name or an ARN): the secret's ARN and value;
/// None when there is no such secret or it is being deleted.
pub(crate) async fn get_value(c: &Clients, id: &str, retry: Retry) -> Result<Option<(Option<String>, Held)>, ApiError> {
    match c.call("GetSecretValue", retry, || c.secrets.get_secret_value().secret_id(id).send()).await {
        Ok(out) => {
            let value = match (out.secret_binary(), out.secret_string()) {
                (Some(blob), _) => Held::Binary(blob.as_ref().to_vec()),
                (None, Some(text)) => Held::Text(text.to_string()),
                (None, None) => Held::Text(String::new()),
            };
            Ok(Some((out.arn().map(str::to_string), value)))
        }
        Err(e) if gone(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The secret does not exist, or is scheduled for deletion (Secrets
/// Manager answers GetSecretValue on one with `InvalidRequestException`).
pub(crate) fn gone(e: &ApiError) -> bool {
    e.code() == "ResourceNotFoundException" || (e.code() == "InvalidRequestException" && e.message.contains("delet"))
}

/// The cluster PKI in the secret `id` (name or ARN): for the join secret's
/// CA hash and for `skyplan kubeconfig`.
pub(crate) async fn cluster_pki(c: &Clients, id: &str, retry: Retry) -> Result<ClusterPki, ProviderError> {
    match get_value(c, id, retry).await?.map(|(_, value)| value) {
        Some(Held::Binary(bytes)) => ClusterPki::from_archive(&bytes)
            .map_err(|e| ProviderError::new(format!("secret {id} is not the archive of CAs skyplan writes ({e})"))),
        Some(Held::Text(_)) => {
            Err(ProviderError::new(format!("secret {id} holds text, not the archive of CAs skyplan writes")))
        }
        None => Err(ProviderError::new(format!("secret {id} does not exist (or is being deleted)"))),
    }
}
