use checkout_messages::Topic;

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
        Topic::ALL.into_iter().flat_map(|topic| [self.physical(topic), self.dead_letter(topic)]).collect()
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
}
