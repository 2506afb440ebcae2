use checkout_messages::{Topic, TopicKind};

/// Maps logical topics to the physical names on the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicNames {
    prefix: String,
}

impl TopicNames {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self { prefix: prefix.into() }
    }

    pub fn physical(&self, topic: Topic) -> String {
        format!("{}{}", self.prefix, topic.name())
    }

    /// The dead-letter topic for a physical topic.
    pub fn dead_letter_of(physical: &str) -> String {
        format!("{physical}{}", Topic::DEAD_LETTER_SUFFIX)
    }

    pub fn dead_letter(&self, topic: Topic) -> String {
        Self::dead_letter_of(&self.physical(topic))
    }

    /// The logical topic behind a physical name, if it is one of ours.
    pub fn logical(&self, physical: &str) -> Option<Topic> {
        physical.strip_prefix(&self.prefix).and_then(Topic::from_name)
    }

    /// Every topic the system needs, with its dead-letter topic.
    pub fn all_with_dead_letters(&self) -> Vec<String> {
        self.specs().into_iter().map(|spec| spec.name).collect()
    }

    /// Every topic the system needs, with its dead-letter topic, and how
    /// each is configured.
    pub fn specs(&self) -> Vec<TopicSpec> {
        Topic::ALL
            .into_iter()
            .flat_map(|topic| {
                [
                    TopicSpec { name: self.physical(topic), retention: Retention::of(topic) },
                    TopicSpec { name: self.dead_letter(topic), retention: Retention::DeadLetters },
                ]
            })
            .collect()
    }
}

/// A physical topic and how long the broker keeps its records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub retention: Retention,
}

impl TopicSpec {
    /// The topic-level configs the broker is given for it.
    pub fn configs(&self) -> Vec<(&'static str, String)> {
        vec![("retention.ms", self.retention.millis().to_string())]
    }
}

/// How long records stay on a topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retention {
    /// Events are the record of what happened: kept for ever, so that a read
    /// model can be rebuilt by replaying them from offset 0.
    Forever,
    /// Commands matter only until they are executed; a week covers any outage.
    Commands,
    /// Dead letters wait for an operator: a month to inspect and redrive them.
    DeadLetters,
}

impl Retention {
    pub const fn of(topic: Topic) -> Self {
        match topic.kind() {
            TopicKind::Events => Self::Forever,
            TopicKind::Commands => Self::Commands,
        }
    }

    /// The value of `retention.ms`: -1 is Kafka's "no time limit".
    pub const fn millis(self) -> i64 {
        const DAY: i64 = 24 * 60 * 60 * 1000;
        match self {
            Self::Forever => -1,
            Self::Commands => 7 * DAY,
            Self::DeadLetters => 30 * DAY,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixed_names_map_back_to_their_logical_topic() {
        let names = TopicNames::new("t42-");
        assert_eq!(names.physical(Topic::InventoryCommands), "t42-inventory.commands");
        assert_eq!(names.dead_letter(Topic::InventoryCommands), "t42-inventory.commands.dlt");
        assert_eq!(names.logical("t42-inventory.commands"), Some(Topic::InventoryCommands));
        assert_eq!(names.logical("inventory.commands"), None);
        assert_eq!(names.logical("t42-inventory.commands.dlt"), None);
        assert_eq!(names.all_with_dead_letters().len(), 2 * Topic::ALL.len());
    }

    #[test]
    fn events_are_kept_for_ever_and_commands_and_dead_letters_expire() {
        let specs = TopicNames::new("").specs();
        let retention = |name: &str| specs.iter().find(|s| s.name == name).map(|s| s.retention.millis());
        assert_eq!(retention("order.events"), Some(-1));
        assert_eq!(retention("orchestrator.events"), Some(-1));
        assert!(retention("payment.commands").is_some_and(|ms| ms > 0));
        assert!(retention("order.events.dlt").is_some_and(|ms| ms > 0));
        assert!(specs.iter().all(|s| s.configs() == vec![("retention.ms", s.retention.millis().to_string())]));
    }
}
