//! The metadata image: an immutable value; applying records yields a new one.

use std::collections::BTreeMap;
use std::sync::Arc;

use uuid::Uuid;

use crate::{MetadataError, MetadataRecord};

/// What a configuration override applies to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConfigResource {
    Topic(String),
    Broker(i32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicImage {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    /// Topic-level configuration overrides (the broker defaults apply otherwise).
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataImage {
    topics: BTreeMap<String, Arc<TopicImage>>,
    topic_names: BTreeMap<Uuid, String>,
    broker_configs: BTreeMap<i32, BTreeMap<String, String>>,
    /// The first producer id not yet handed out.
    next_producer_id: i64,
}

impl MetadataImage {
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicImage>> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<&Arc<TopicImage>> {
        self.topic_names.get(&id).and_then(|name| self.topics.get(name))
    }

    pub fn topics(&self) -> impl Iterator<Item = &Arc<TopicImage>> {
        self.topics.values()
    }

    pub fn next_producer_id(&self) -> i64 {
        self.next_producer_id
    }

    pub fn broker_configs(&self, node_id: i32) -> Option<&BTreeMap<String, String>> {
        self.broker_configs.get(&node_id)
    }

    /// The image after `record`, or why the record does not apply.
    pub fn apply(&mut self, record: &MetadataRecord) -> Result<(), MetadataError> {
        match record {
            MetadataRecord::Topic { name, id, partitions } => {
                if self.topics.contains_key(name) {
                    return Err(MetadataError::TopicExists(name.clone()));
                }
                let topic = TopicImage {
                    name: name.clone(),
                    id: *id,
                    partitions: *partitions,
                    configs: BTreeMap::new(),
                };
                self.topic_names.insert(*id, name.clone());
                self.topics.insert(name.clone(), Arc::new(topic));
            }
            MetadataRecord::PartitionCount { id, partitions } => {
                let topic = self.topic_mut_by_id(*id)?;
                if *partitions < topic.partitions {
                    return Err(MetadataError::PartitionCountShrinks {
                        current: topic.partitions,
                        requested: *partitions,
                    });
                }
                topic.partitions = *partitions;
            }
            MetadataRecord::Config { resource, key, value } => {
                let configs = match resource {
                    ConfigResource::Topic(name) => {
                        let topic = self
                            .topics
                            .get_mut(name)
                            .ok_or_else(|| MetadataError::UnknownTopic(name.clone()))?;
                        &mut Arc::make_mut(topic).configs
                    }
                    ConfigResource::Broker(node_id) => self.broker_configs.entry(*node_id).or_default(),
                };
                match value {
                    Some(value) => configs.insert(key.clone(), value.clone()),
                    None => configs.remove(key),
                };
            }
            MetadataRecord::ProducerIdBlock { next_block_start } => {
                if *next_block_start < self.next_producer_id {
                    return Err(MetadataError::ProducerIdsBackwards {
                        current: self.next_producer_id,
                        requested: *next_block_start,
                    });
                }
                self.next_producer_id = *next_block_start;
            }
            MetadataRecord::RemoveTopic { id } => {
                let name = self.topic_names.remove(id).ok_or(MetadataError::UnknownTopicId(*id))?;
                self.topics.remove(&name);
            }
        }
        Ok(())
    }

    fn topic_mut_by_id(&mut self, id: Uuid) -> Result<&mut TopicImage, MetadataError> {
        let name = self.topic_names.get(&id).ok_or(MetadataError::UnknownTopicId(id))?;
        let topic = self.topics.get_mut(name).ok_or(MetadataError::UnknownTopicId(id))?;
        Ok(Arc::make_mut(topic))
    }

    /// The records that rebuild this image from nothing (a snapshot's content).
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        let mut records = Vec::new();
        for topic in self.topics.values() {
            records.push(MetadataRecord::Topic {
                name: topic.name.clone(),
                id: topic.id,
                partitions: topic.partitions,
            });
            for (key, value) in &topic.configs {
                let resource = ConfigResource::Topic(topic.name.clone());
                records.push(MetadataRecord::Config {
                    resource,
                    key: key.clone(),
                    value: Some(value.clone()),
                });
            }
        }
        for (node_id, configs) in &self.broker_configs {
            for (key, value) in configs {
                let resource = ConfigResource::Broker(*node_id);
                records.push(MetadataRecord::Config {
                    resource,
                    key: key.clone(),
                    value: Some(value.clone()),
                });
            }
        }
        if self.next_producer_id > 0 {
            records.push(MetadataRecord::ProducerIdBlock {
                next_block_start: self.next_producer_id,
            });
        }
        records
    }
}
