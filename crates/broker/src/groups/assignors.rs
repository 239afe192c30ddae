//! Server-side partition assignors of the KIP-848 consumer protocol:
//! `uniform` (balanced and sticky) and `range` (contiguous per topic).

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

/// A partition of a topic, by topic id.
pub type TopicPartition = (Uuid, i32);

/// What the assignor sees of one member.
pub struct AssignorMember<'a> {
    pub id: &'a str,
    /// Subscribed topics that exist: (topic id, partition count).
    pub topics: Vec<(Uuid, i32)>,
    /// The member's previous target, for stickiness.
    pub previous: Option<&'a BTreeSet<TopicPartition>>,
}

pub const ASSIGNORS: [&str; 2] = ["uniform", "range"];

/// Computes every member's target assignment. `members` must be sorted by id.
pub fn assign(assignor: &str, members: &[AssignorMember]) -> BTreeMap<String, BTreeSet<TopicPartition>> {
    match assignor {
        "range" => range(members),
        _ => uniform(members),
    }
}

/// Each partition goes to one subscribed member; a member keeps what it had
/// while it is under its fair share, then the rest go to the least loaded.
fn uniform(members: &[AssignorMember]) -> BTreeMap<String, BTreeSet<TopicPartition>> {
    let mut result: BTreeMap<String, BTreeSet<TopicPartition>> =
        members.iter().map(|m| (m.id.to_string(), BTreeSet::new())).collect();
    let mut partitions: BTreeMap<TopicPartition, Vec<&str>> = BTreeMap::new();
    for member in members {
        for (topic, count) in &member.topics {
            for partition in 0..*count {
                partitions.entry((*topic, partition)).or_default().push(member.id);
            }
        }
    }
    if members.is_empty() {
        return result;
    }
    // A balanced assignment gives every member `quota` partitions and
    // `extra` of them one more; what a member keeps from before must fit
    // that, or a member that joins last could be left with nothing.
    let quota = partitions.len() / members.len();
    let mut extra = partitions.len() % members.len();
    let mut unassigned = Vec::new();
    for (partition, eligible) in &partitions {
        let sticky = members
            .iter()
            .find(|m| eligible.contains(&m.id) && m.previous.is_some_and(|p| p.contains(partition)))
            .filter(|m| {
                let held = result[m.id].len();
                let one_more = held == quota && extra > 0;
                if one_more {
                    extra -= 1;
                }
                held < quota || one_more
            });
        match sticky {
            Some(member) => {
                result.get_mut(member.id).expect("member").insert(*partition);
            }
            None => unassigned.push((*partition, eligible)),
        }
    }
    for (partition, eligible) in unassigned {
        let least_loaded = eligible
            .iter()
            .min_by_key(|id| (result[**id].len(), **id))
            .expect("a subscriber");
        result.get_mut(*least_loaded).expect("member").insert(partition);
    }
    result
}

/// Per topic, the subscribed members (by id) take contiguous ranges of partitions.
fn range(members: &[AssignorMember]) -> BTreeMap<String, BTreeSet<TopicPartition>> {
    let mut result: BTreeMap<String, BTreeSet<TopicPartition>> =
        members.iter().map(|m| (m.id.to_string(), BTreeSet::new())).collect();
    let mut topics: BTreeMap<Uuid, (i32, Vec<&str>)> = BTreeMap::new();
    for member in members {
        for (topic, count) in &member.topics {
            topics.entry(*topic).or_insert((*count, Vec::new())).1.push(member.id);
        }
    }
    for (topic, (count, subscribers)) in topics {
        let per_member = count as usize / subscribers.len();
        let extra = count as usize % subscribers.len();
        let mut next = 0;
        for (index, member) in subscribers.iter().enumerate() {
            let take = per_member + usize::from(index < extra);
            let partitions = result.get_mut(*member).expect("member");
            partitions.extend((next..next + take).map(|p| (topic, p as i32)));
            next += take;
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member<'a>(
        id: &'a str,
        topics: &[(Uuid, i32)],
        previous: Option<&'a BTreeSet<TopicPartition>>,
    ) -> AssignorMember<'a> {
        AssignorMember {
            id,
            topics: topics.to_vec(),
            previous,
        }
    }

    #[test]
    fn uniform_balances_and_keeps_what_it_can() {
        let topic = Uuid::from_u128(1);
        let one = assign("uniform", &[member("a", &[(topic, 6)], None)]);
        assert_eq!(one["a"].len(), 6);
        let previous = one["a"].clone();
        let two = assign(
            "uniform",
            &[
                member("a", &[(topic, 6)], Some(&previous)),
                member("b", &[(topic, 6)], None),
            ],
        );
        assert_eq!((two["a"].len(), two["b"].len()), (3, 3));
        assert!(two["a"].is_subset(&previous), "a keeps partitions it had");
        assert!(two["a"].is_disjoint(&two["b"]));
    }

    #[test]
    fn uniform_gives_a_member_that_joins_last_its_share() {
        let topic = Uuid::from_u128(1);
        let ids: Vec<String> = (0..9).map(|i| format!("m{i}")).collect();
        // Eight members hold all 30 partitions (four or three each).
        let eight: Vec<AssignorMember> = ids[..8].iter().map(|id| member(id, &[(topic, 30)], None)).collect();
        let before = assign("uniform", &eight);
        let nine: Vec<AssignorMember> = ids
            .iter()
            .map(|id| member(id, &[(topic, 30)], before.get(id.as_str())))
            .collect();
        let after = assign("uniform", &nine);
        let mut sizes: Vec<usize> = after.values().map(BTreeSet::len).collect();
        sizes.sort();
        assert_eq!(sizes, [3, 3, 3, 3, 3, 3, 4, 4, 4], "{after:?}");
        for id in &ids[..8] {
            assert!(
                after[id.as_str()].is_subset(&before[id.as_str()]),
                "{id} only gives up partitions"
            );
        }
    }

    #[test]
    fn range_gives_contiguous_ranges_and_respects_subscriptions() {
        let (t1, t2) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let result = assign(
            "range",
            &[member("a", &[(t1, 5), (t2, 2)], None), member("b", &[(t1, 5)], None)],
        );
        assert_eq!(
            result["a"],
            BTreeSet::from([(t1, 0), (t1, 1), (t1, 2), (t2, 0), (t2, 1)])
        );
        assert_eq!(result["b"], BTreeSet::from([(t1, 3), (t1, 4)]));
    }
}
