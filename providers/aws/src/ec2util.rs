//! Small helpers every EC2 kind shares: describe-by-id filters, the ids of
//! a batch of read requests, and error context for a create that half
//! succeeded.
//!
//! Batched reads filter by id (`vpc-id`, `allocation-id`, ...) instead of
//! passing `*Ids`: with ids, one deleted resource fails the whole call with
//! `*.NotFound`; with a filter it is simply absent from the answer.

use std::collections::{BTreeSet, HashMap};
use std::error::Error as StdError;
use std::future::Future;

use aws_sdk_ec2::types::Filter;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use skyplan_engine::{Address, ProviderError, ReadRequest};

use crate::attrs;
use crate::clients::Clients;
use crate::error::ApiError;
use crate::retry::Retry;
use crate::tags::ADDRESS_TAG;

/// AWS accepts at most 200 values per filter.
pub(crate) const FILTER_CHUNK: usize = 200;

pub(crate) fn filter(name: &str, values: impl IntoIterator<Item = impl Into<String>>) -> Filter {
    Filter::builder().name(name).set_values(Some(values.into_iter().map(Into::into).collect())).build()
}

/// The distinct ids of a batch of read requests, sorted, in filter-sized chunks.
pub(crate) fn id_chunks(reqs: &[ReadRequest]) -> Vec<Vec<String>> {
    let ids: BTreeSet<String> = reqs.iter().filter_map(|r| attrs::id(&r.prior).ok()).map(str::to_string).collect();
    let ids: Vec<String> = ids.into_iter().collect();
    ids.chunks(FILTER_CHUNK).map(<[String]>::to_vec).collect()
}

/// Everything a paginated EC2 describe returns for the ids of `reqs`, by
/// id: one describe per filter-sized chunk of ids (`send(ids, next_token)`),
/// following next tokens. The batched read every EC2 kind shares.
pub(crate) async fn describe_by_id<Page, Item, E, Fut>(
    c: &Clients,
    operation: &'static str,
    reqs: &[ReadRequest],
    mut send: impl FnMut(Vec<String>, Option<String>) -> Fut,
    items: impl Fn(&Page) -> &[Item],
    id: impl Fn(&Item) -> Option<&str>,
    next_token: impl Fn(&Page) -> Option<&str>,
) -> Result<HashMap<String, Item>, ApiError>
where
    Item: Clone,
    Fut: Future<Output = Result<Page, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let mut found = HashMap::new();
    for ids in id_chunks(reqs) {
        let page_items = |page: &Page| items(page).to_vec();
        for item in
            c.paginate(operation, Retry::Standard, |token| send(ids.clone(), token), page_items, &next_token).await?
        {
            if let Some(key) = id(&item).map(str::to_string) {
                found.insert(key, item);
            }
        }
    }
    Ok(found)
}

/// An error after the resource was created: say so, and how to find it.
pub(crate) fn created_but(id: &str, address: &Address, e: impl Into<ProviderError>) -> ProviderError {
    let e = e.into();
    ProviderError::new(format!(
        "{id} was created but then {}; it is tagged {ADDRESS_TAG}={address}: delete it, or fix the cause and apply again after removing it",
        e.message
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn ids_of_a_batch_are_distinct_and_chunked() {
        let reqs: Vec<ReadRequest> = (0..450)
            .map(|n| ReadRequest {
                address: Address::keyed("aws_subnet", "s", n.to_string()),
                kind: "aws_subnet".into(),
                prior: json!({"id": format!("subnet-{:03}", n % 401)}).as_object().unwrap().clone(),
            })
            .collect();
        let chunks = id_chunks(&reqs);
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), [200, 200, 1]);
    }
}

/// The operation's idempotency token as EC2 accepts it (at most 64 ASCII
/// characters): as given when it fits, else a stable digest of it, so a
/// retried or resumed operation sends the same token.
pub(crate) fn client_token(token: &str) -> String {
    if !token.is_empty() && token.len() <= 64 && token.is_ascii() {
        return token.to_string();
    }
    // FNV-1a, twice with different offsets: stable across runs and builds.
    let fnv = |offset: u64| token.bytes().fold(offset, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3));
    format!("skyplan-{:016x}{:016x}", fnv(0xcbf2_9ce4_8422_2325), fnv(0x8422_2325_cbf2_9ce4))
}

#[cfg(test)]
mod token_tests {
    use super::client_token;

    #[test]
    fn short_tokens_pass_long_ones_are_digested_stably() {
        assert_eq!(client_token("apply-7-aws_nat_gateway.main[a]"), "apply-7-aws_nat_gateway.main[a]");
        let long = "x".repeat(100);
        let t = client_token(&long);
        assert!(t.len() <= 64 && t.is_ascii(), "{t}");
        assert_eq!(t, client_token(&long));
        assert_ne!(t, client_token(&"y".repeat(100)));
        assert!(client_token("naïve").is_ascii());
    }
}
