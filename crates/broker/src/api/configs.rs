//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics and
//! the broker, with Kafka's config sources and synonyms.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, alter_configs_response,
    incremental_alter_configs_response,
};
use kafka_protocol::protocol::StrBytes;

use super::blocking;
use crate::config::DEFAULTS;
use crate::errors::{INVALID_CONFIG, INVALID_REQUEST, UNKNOWN_TOPIC_OR_PARTITION};
use crate::partitions::TopicError;
use crate::state::BrokerState;
use crate::topic_config::{ConfigSource, ConfigType, TOPIC_CONFIGS, broker_value, effective, find};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

/// DescribeConfigs' config_type codes.
fn type_code(kind: ConfigType) -> i8 {
    match kind {
        ConfigType::Boolean => 1,
        ConfigType::Choice(_) => 2,
        ConfigType::Int { .. } => 3,
        ConfigType::Long { .. } => 5,
        ConfigType::Double { .. } => 6,
        ConfigType::List(_) => 7,
    }
}

fn text(value: impl Into<String>) -> StrBytes {
    StrBytes::from_string(value.into())
}

pub fn describe(state: &BrokerState, request: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let wanted = |name: &str| {
                resource
                    .configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.is_empty() || keys.iter().any(|k| k.as_str() == name))
            };
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            match resource.resource_type {
                TOPIC => match state.partitions.topic(&resource.resource_name) {
                    Some(topic) => {
                        let configs = TOPIC_CONFIGS
                            .iter()
                            .filter(|def| wanted(def.name))
                            .map(|def| {
                                describe_topic_config(state, def, &topic.image.configs, request.include_synonyms)
                            })
                            .collect();
                        result.with_configs(configs)
                    }
                    None => result
                        .with_error_code(UNKNOWN_TOPIC_OR_PARTITION)
                        .with_error_message(Some(text(format!(
                            "Topic '{}' does not exist.",
                            resource.resource_name
                        )))),
                },
                BROKER
                    if resource.resource_name.is_empty()
                        || resource.resource_name.as_str() == state.node_id.to_string() =>
                {
                    let configs = DEFAULTS
                        .iter()
                        .filter(|(name, _)| wanted(name))
                        .map(|(name, default)| {
                            let (value, source) = match state.config().properties.get(*name) {
                                Some(value) => (value.clone(), ConfigSource::StaticBroker),
                                None => (default.to_string(), ConfigSource::Default),
                            };
                            DescribeConfigsResourceResult::default()
                                .with_name(text(*name))
                                .with_value(Some(text(value)))
                                .with_read_only(true)
                                .with_config_source(source as i8)
                                .with_config_type(2)
                        })
                        .collect();
                    result.with_configs(configs)
                }
                BROKER => result
                    .with_error_code(INVALID_REQUEST)
                    .with_error_message(Some(text(format!("Unknown broker {}", resource.resource_name)))),
                other => result
                    .with_error_code(INVALID_REQUEST)
                    .with_error_message(Some(text(format!("Unsupported resource type {other}")))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn describe_topic_config(
    state: &BrokerState,
    def: &crate::topic_config::TopicConfigDef,
    overrides: &BTreeMap<String, String>,
    include_synonyms: bool,
) -> DescribeConfigsResourceResult {
    let (value, source) = effective(def, overrides, state.config());
    let mut synonyms = Vec::new();
    if include_synonyms {
        if let Some(value) = overrides.get(def.name) {
            synonyms.push(
                DescribeConfigsSynonym::default()
                    .with_name(text(def.name))
                    .with_value(Some(text(value.clone())))
                    .with_source(ConfigSource::Topic as i8),
            );
        }
        if let Some(value) = broker_value(def, state.config()) {
            synonyms.push(
                DescribeConfigsSynonym::default()
                    .with_name(text(def.synonym))
                    .with_value(Some(text(value)))
                    .with_source(ConfigSource::StaticBroker as i8),
            );
        }
        let default_name = if def.synonym.is_empty() { def.name } else { def.synonym };
        synonyms.push(
            DescribeConfigsSynonym::default()
                .with_name(text(default_name))
                .with_value(Some(text(def.default)))
                .with_source(ConfigSource::Default as i8),
        );
    }
    DescribeConfigsResourceResult::default()
        .with_name(text(def.name))
        .with_value(Some(text(value)))
        .with_read_only(false)
        .with_config_source(source as i8)
        .with_synonyms(synonyms)
        .with_config_type(type_code(def.kind))
}

/// Outcome of one resource's change: (error code, message).
type AlterOutcome = (i16, Option<StrBytes>);

async fn alter_topic(
    state: &Arc<BrokerState>,
    resource_type: i8,
    name: StrBytes,
    changes: Result<Vec<(String, Option<String>)>, String>,
    validate_only: bool,
) -> AlterOutcome {
    match resource_type {
        TOPIC => {}
        BROKER => {
            return (
                INVALID_REQUEST,
                Some(text(
                    "Dynamic broker configuration is not supported yet; set it in server.properties or with --set",
                )),
            );
        }
        other => {
            return (
                INVALID_REQUEST,
                Some(text(format!("Unsupported resource type {other}"))),
            );
        }
    }
    let changes = match changes {
        Ok(changes) => changes,
        Err(reason) => return (INVALID_CONFIG, Some(text(reason))),
    };
    let worker = state.clone();
    let topic = name.to_string();
    match blocking(move || worker.partitions.alter_topic_configs(&topic, changes, validate_only)).await {
        Ok(()) => (0, None),
        Err(error @ TopicError::UnknownTopic(_)) => (UNKNOWN_TOPIC_OR_PARTITION, Some(text(error.to_string()))),
        Err(error) => (error.code(), Some(text(error.to_string()))),
    }
}

/// Legacy AlterConfigs: the given set replaces every override of the resource.
pub async fn alter(state: &Arc<BrokerState>, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::new();
    for resource in request.resources {
        let current = state
            .partitions
            .topic(&resource.resource_name)
            .map(|t| t.image.configs.clone())
            .unwrap_or_default();
        let given: BTreeMap<String, Option<String>> = resource
            .configs
            .iter()
            .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
            .collect();
        let removed: Vec<_> = current
            .keys()
            .filter(|key| !given.contains_key(*key))
            .map(|key| (key.clone(), None))
            .collect();
        let changes: Vec<(String, Option<String>)> = given.into_iter().chain(removed).collect();
        let (code, message) = alter_topic(
            state,
            resource.resource_type,
            resource.resource_name.clone(),
            Ok(changes),
            request.validate_only,
        )
        .await;
        responses.push(
            alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name),
        );
    }
    AlterConfigsResponse::default().with_responses(responses)
}

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

pub async fn incremental_alter(
    state: &Arc<BrokerState>,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::new();
    for resource in request.resources {
        let current = state
            .partitions
            .topic(&resource.resource_name)
            .map(|t| t.image.configs.clone())
            .unwrap_or_default();
        let changes = resource
            .configs
            .iter()
            .map(|config| {
                incremental_change(
                    state,
                    &current,
                    config.name.as_str(),
                    config.config_operation,
                    config.value.as_ref().map(|v| v.as_str()),
                )
            })
            .collect();
        let (code, message) = alter_topic(
            state,
            resource.resource_type,
            resource.resource_name.clone(),
            changes,
            request.validate_only,
        )
        .await;
        responses.push(
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name),
        );
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// One incremental operation as a plain set-or-delete.
fn incremental_change(
    state: &BrokerState,
    current: &BTreeMap<String, String>,
    name: &str,
    operation: i8,
    value: Option<&str>,
) -> Result<(String, Option<String>), String> {
    let def = find(name).ok_or_else(|| format!("Unknown topic config name: {name}"))?;
    match operation {
        SET => Ok((
            name.to_string(),
            Some(
                value
                    .ok_or_else(|| format!("Null value not supported for {name}"))?
                    .to_string(),
            ),
        )),
        DELETE => Ok((name.to_string(), None)),
        APPEND | SUBTRACT => {
            if !matches!(def.kind, ConfigType::List(_)) {
                return Err(format!(
                    "Config value append/subtract is not allowed for config key {name}, which is not a list"
                ));
            }
            let existing = current
                .get(name)
                .cloned()
                .unwrap_or_else(|| effective(def, &BTreeMap::new(), state.config()).0);
            let mut items: Vec<String> = existing
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            for item in value.unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()) {
                match operation {
                    APPEND if !items.iter().any(|i| i == item) => items.push(item.to_string()),
                    SUBTRACT => items.retain(|i| i != item),
                    _ => {}
                }
            }
            Ok((name.to_string(), Some(items.join(","))))
        }
        other => Err(format!("Unknown config operation {other}")),
    }
}
