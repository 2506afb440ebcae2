use std::fmt;

/// The logical topics of the system, one per service and kind of message.
///
/// Commands go to the topic of the service that executes them; events to the
/// topic of the service that emits them. Each topic has a dead-letter topic
/// named `<topic>.dlt`. Physical names may carry a deployment prefix, applied
/// by the Kafka adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    OrderCommands,
    OrderEvents,
    InventoryCommands,
    InventoryEvents,
    PaymentCommands,
    PaymentEvents,
    NotificationCommands,
    NotificationEvents,
    /// Saga progress published by the orchestrator (the order's step timeline).
    OrchestratorEvents,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopicKind {
    Commands,
    Events,
}

impl Topic {
    pub const ALL: [Self; 9] = [
        Self::OrderCommands,
        Self::OrderEvents,
        Self::InventoryCommands,
        Self::InventoryEvents,
        Self::PaymentCommands,
        Self::PaymentEvents,
        Self::NotificationCommands,
        Self::NotificationEvents,
        Self::OrchestratorEvents,
    ];

    /// Suffix appended to a topic's name to name its dead-letter topic.
    pub const DEAD_LETTER_SUFFIX: &'static str = ".dlt";

    pub const fn name(self) -> &'static str {
        match self {
            Self::OrderCommands => "order.commands",
            Self::OrderEvents => "order.events",
            Self::InventoryCommands => "inventory.commands",
            Self::InventoryEvents => "inventory.events",
            Self::PaymentCommands => "payment.commands",
            Self::PaymentEvents => "payment.events",
            Self::NotificationCommands => "notification.commands",
            Self::NotificationEvents => "notification.events",
            Self::OrchestratorEvents => "orchestrator.events",
        }
    }

    pub const fn kind(self) -> TopicKind {
        match self {
            Self::OrderCommands | Self::InventoryCommands | Self::PaymentCommands | Self::NotificationCommands => {
                TopicKind::Commands
            }
            Self::OrderEvents
            | Self::InventoryEvents
            | Self::PaymentEvents
            | Self::NotificationEvents
            | Self::OrchestratorEvents => TopicKind::Events,
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|topic| topic.name() == name)
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_domain_then_kind_and_unique() {
        let mut names: Vec<_> = Topic::ALL.iter().map(|t| t.name()).collect();
        for topic in Topic::ALL {
            let kind = match topic.kind() {
                TopicKind::Commands => "commands",
                TopicKind::Events => "events",
            };
            assert!(topic.name().ends_with(kind), "{topic} is not named for its kind");
            assert_eq!(Topic::from_name(topic.name()), Some(topic));
        }
        names.dedup();
        assert_eq!(names.len(), Topic::ALL.len());
    }
}
