//! ApiVersions (key 18).

use kafka_protocol::messages::ApiVersionsResponse;

use crate::dispatch::api_version_list;

/// Lists exactly the implemented APIs and versions. No features are
/// finalized (in particular not `transaction.version`).
pub fn handle(_version: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(0)
        .with_api_keys(api_version_list())
        .with_finalized_features_epoch(-1)
}
