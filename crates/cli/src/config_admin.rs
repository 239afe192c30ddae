//! DescribeConfigs and IncrementalAlterConfigs with Kafka's per-resource
//! errors, over librdkafka's C admin API.
//!
//! Why not rdkafka's `AdminClient`: in rdkafka 0.39 its DescribeConfigs and
//! AlterConfigs futures drop the per-resource error code (a describe of a
//! missing topic "succeeds" with no entries; an invalid value "succeeds"
//! unchanged), and it has no IncrementalAlterConfigs (KIP-339), so changing
//! one config would mean rewriting all of them. librdkafka itself has both;
//! this module is the thin, owned-pointer wrapper the CLI needs. It blocks
//! the calling thread for at most the request timeout (plus a margin).

use std::ffi::{CStr, CString, c_char};
use std::fmt;
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::admin::{ConfigEntry, ConfigSource, ResourceSpecifier};
use rdkafka::bindings as rd;
use rdkafka::client::Client;
use rdkafka::error::RDKafkaErrorCode;

/// One change of an IncrementalAlterConfigs request.
#[derive(Debug, Clone, Copy)]
pub enum AlterOp<'a> {
    Set(&'a str, &'a str),
    /// Back to the inherited value (the broker's, or Kafka's default).
    Delete(&'a str),
}

#[derive(Debug)]
pub enum AdminError {
    /// The request as a whole failed (unreachable cluster, timeout, ...).
    Request(RDKafkaErrorCode, String),
    /// The broker answered with Kafka's error code (and message) for the resource.
    Resource(RDKafkaErrorCode, Option<String>),
    /// librdkafka refused the request before sending it.
    Local(String),
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminError::Request(code, message) => write!(f, "{message} ({code})"),
            AdminError::Resource(_, Some(message)) => f.write_str(message),
            AdminError::Resource(code, None) => write!(f, "{code}"),
            AdminError::Local(message) => f.write_str(message),
        }
    }
}

/// Every config of `resource` with its value and source.
pub fn describe_configs<C: ClientContext>(
    client: &Client<C>,
    resource: ResourceSpecifier<'_>,
    timeout: Duration,
) -> Result<Vec<ConfigEntry>, AdminError> {
    let config_resource = new_config_resource(resource)?;
    request(
        client,
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS,
        &config_resource,
        timeout,
        rd::rd_kafka_DescribeConfigs,
        |event| {
            // SAFETY: `event` is a live event; its result and the arrays and
            // entries reached from it stay valid until the event is destroyed,
            // which happens only after this closure has copied what it needs.
            unsafe {
                let result = rd::rd_kafka_event_DescribeConfigs_result(event);
                if result.is_null() {
                    return Err(AdminError::Local(
                        "DescribeConfigs answered with another event type".into(),
                    ));
                }
                let mut count = 0;
                let resources = rd::rd_kafka_DescribeConfigs_result_resources(result, &mut count);
                let answered = only_resource(resources, count)?;
                let mut entry_count = 0;
                let entries = rd::rd_kafka_ConfigResource_configs(answered, &mut entry_count);
                Ok((0..entry_count).map(|index| copy_entry(*entries.add(index))).collect())
            }
        },
    )
}

/// Applies `ops` to `resource` in one IncrementalAlterConfigs request.
pub fn incremental_alter_configs<C: ClientContext>(
    client: &Client<C>,
    resource: ResourceSpecifier<'_>,
    ops: &[AlterOp<'_>],
    timeout: Duration,
) -> Result<(), AdminError> {
    let config_resource = new_config_resource(resource)?;
    for op in ops {
        let (name, op_type, value) = match *op {
            AlterOp::Set(name, value) => (
                name,
                rd::rd_kafka_AlterConfigOpType_t::RD_KAFKA_ALTER_CONFIG_OP_TYPE_SET,
                Some(value),
            ),
            AlterOp::Delete(name) => (
                name,
                rd::rd_kafka_AlterConfigOpType_t::RD_KAFKA_ALTER_CONFIG_OP_TYPE_DELETE,
                None,
            ),
        };
        let name = c_string(name)?;
        let value = value.map(c_string).transpose()?;
        // SAFETY: the resource is live and owned; librdkafka copies both strings.
        let error = unsafe {
            rd::rd_kafka_ConfigResource_add_incremental_config(
                config_resource.ptr,
                name.as_ptr(),
                op_type,
                value.as_ref().map_or(std::ptr::null(), |value| value.as_ptr()),
            )
        };
        if !error.is_null() {
            // SAFETY: a non-null error is ours to read and destroy.
            let message = unsafe {
                let message = text(rd::rd_kafka_error_string(error));
                rd::rd_kafka_error_destroy(error);
                message
            };
            return Err(AdminError::Local(
                message.unwrap_or_else(|| "invalid config change".into()),
            ));
        }
    }
    request(
        client,
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_INCREMENTALALTERCONFIGS,
        &config_resource,
        timeout,
        rd::rd_kafka_IncrementalAlterConfigs,
        |event| {
            // SAFETY: as in describe_configs, everything read here lives as long as the event.
            unsafe {
                let result = rd::rd_kafka_event_IncrementalAlterConfigs_result(event);
                if result.is_null() {
                    return Err(AdminError::Local(
                        "IncrementalAlterConfigs answered with another event type".into(),
                    ));
                }
                let mut count = 0;
                let resources = rd::rd_kafka_IncrementalAlterConfigs_result_resources(result, &mut count);
                only_resource(resources, count).map(|_| ())
            }
        },
    )
}

/// A librdkafka object freed by its own destructor when dropped.
struct Owned<T> {
    ptr: *mut T,
    destroy: unsafe extern "C" fn(*mut T),
}

impl<T> Owned<T> {
    fn new(ptr: *mut T, destroy: unsafe extern "C" fn(*mut T), what: &str) -> Result<Owned<T>, AdminError> {
        if ptr.is_null() {
            return Err(AdminError::Local(format!("librdkafka could not create {what}")));
        }
        Ok(Owned { ptr, destroy })
    }
}

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from the matching constructor and is freed once, here.
        unsafe { (self.destroy)(self.ptr) }
    }
}

type SendFn = unsafe extern "C" fn(
    *mut rd::rd_kafka_t,
    *mut *mut rd::rd_kafka_ConfigResource_t,
    usize,
    *const rd::rd_kafka_AdminOptions_t,
    *mut rd::rd_kafka_queue_t,
);

/// Sends one admin request for `config_resource` on a private queue, waits
/// for its result event and hands the event to `read` while it is alive.
fn request<C: ClientContext, R>(
    client: &Client<C>,
    op: rd::rd_kafka_admin_op_t,
    config_resource: &Owned<rd::rd_kafka_ConfigResource_t>,
    timeout: Duration,
    send: SendFn,
    read: impl FnOnce(*mut rd::rd_kafka_event_t) -> Result<R, AdminError>,
) -> Result<R, AdminError> {
    let handle = client.native_ptr();
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: `handle` is the live client borrowed for this whole call; every
    // object created here is owned and destroyed by `Owned`; librdkafka copies
    // the resource and options into the request before `send` returns.
    unsafe {
        let options = Owned::new(
            rd::rd_kafka_AdminOptions_new(handle, op),
            rd::rd_kafka_AdminOptions_destroy,
            "admin options",
        )?;
        let mut error_text = [0 as c_char; 512];
        let code = rd::rd_kafka_AdminOptions_set_request_timeout(
            options.ptr,
            timeout_ms,
            error_text.as_mut_ptr(),
            error_text.len(),
        );
        if code != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Err(AdminError::Local(
                text(error_text.as_ptr()).unwrap_or_else(|| "invalid timeout".into()),
            ));
        }
        let queue = Owned::new(
            rd::rd_kafka_queue_new(handle),
            rd::rd_kafka_queue_destroy,
            "a result queue",
        )?;
        let mut resources = [config_resource.ptr];
        send(handle, resources.as_mut_ptr(), resources.len(), options.ptr, queue.ptr);
        // librdkafka answers by the request timeout at the latest; the margin covers its bookkeeping.
        let event = rd::rd_kafka_queue_poll(queue.ptr, timeout_ms.saturating_add(5_000));
        if event.is_null() {
            return Err(AdminError::Request(
                RDKafkaErrorCode::OperationTimedOut,
                "no answer from the cluster".into(),
            ));
        }
        let event = Owned::new(event, rd::rd_kafka_event_destroy, "an event")?;
        let code = rd::rd_kafka_event_error(event.ptr);
        if code != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            let message = text(rd::rd_kafka_event_error_string(event.ptr)).unwrap_or_default();
            return Err(AdminError::Request(RDKafkaErrorCode::from(code), message));
        }
        read(event.ptr)
    }
}

fn new_config_resource(resource: ResourceSpecifier<'_>) -> Result<Owned<rd::rd_kafka_ConfigResource_t>, AdminError> {
    let (resource_type, name) = match resource {
        ResourceSpecifier::Topic(topic) => (rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC, topic.to_string()),
        ResourceSpecifier::Broker(broker) => (
            rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_BROKER,
            broker.to_string(),
        ),
        ResourceSpecifier::Group(group) => (rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_GROUP, group.to_string()),
    };
    let name = c_string(&name)?;
    // SAFETY: librdkafka copies the name; the result is owned by `Owned`.
    let ptr = unsafe { rd::rd_kafka_ConfigResource_new(resource_type, name.as_ptr()) };
    Owned::new(ptr, rd::rd_kafka_ConfigResource_destroy, "a config resource")
}

/// The single resource of a result, or Kafka's error for it.
///
/// # Safety
/// `resources` must point at `count` valid resource pointers.
unsafe fn only_resource(
    resources: *mut *const rd::rd_kafka_ConfigResource_t,
    count: usize,
) -> Result<*const rd::rd_kafka_ConfigResource_t, AdminError> {
    if count != 1 || resources.is_null() {
        return Err(AdminError::Local(format!(
            "expected one resource in the answer, got {count}"
        )));
    }
    // SAFETY: guaranteed by the caller.
    unsafe {
        let resource = *resources;
        let code = rd::rd_kafka_ConfigResource_error(resource);
        if code != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            let message =
                text(rd::rd_kafka_ConfigResource_error_string(resource)).filter(|message| !message.is_empty());
            return Err(AdminError::Resource(RDKafkaErrorCode::from(code), message));
        }
        Ok(resource)
    }
}

/// # Safety
/// `entry` must be a valid config entry.
unsafe fn copy_entry(entry: *const rd::rd_kafka_ConfigEntry_t) -> ConfigEntry {
    // SAFETY: guaranteed by the caller.
    unsafe {
        ConfigEntry {
            name: text(rd::rd_kafka_ConfigEntry_name(entry)).unwrap_or_default(),
            value: text(rd::rd_kafka_ConfigEntry_value(entry)),
            source: config_source(rd::rd_kafka_ConfigEntry_source(entry)),
            is_read_only: rd::rd_kafka_ConfigEntry_is_read_only(entry) != 0,
            is_default: rd::rd_kafka_ConfigEntry_is_default(entry) != 0,
            is_sensitive: rd::rd_kafka_ConfigEntry_is_sensitive(entry) != 0,
        }
    }
}

fn config_source(source: rd::rd_kafka_ConfigSource_t) -> ConfigSource {
    use rd::rd_kafka_ConfigSource_t::*;
    match source {
        RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG => ConfigSource::DynamicTopic,
        RD_KAFKA_CONFIG_SOURCE_DYNAMIC_BROKER_CONFIG => ConfigSource::DynamicBroker,
        RD_KAFKA_CONFIG_SOURCE_DYNAMIC_DEFAULT_BROKER_CONFIG => ConfigSource::DynamicDefaultBroker,
        RD_KAFKA_CONFIG_SOURCE_STATIC_BROKER_CONFIG => ConfigSource::StaticBroker,
        RD_KAFKA_CONFIG_SOURCE_DEFAULT_CONFIG => ConfigSource::Default,
        _ => ConfigSource::Unknown,
    }
}

fn c_string(text: &str) -> Result<CString, AdminError> {
    CString::new(text).map_err(|_| AdminError::Local(format!("{text:?} contains a NUL byte")))
}

/// # Safety
/// `ptr` must be null or a NUL-terminated string valid for this call.
unsafe fn text(ptr: *const c_char) -> Option<String> {
    // SAFETY: guaranteed by the caller.
    (!ptr.is_null()).then(|| unsafe { CStr::from_ptr(ptr) }.to_string_lossy().into_owned())
}
