//! The simulated participants of the saga's model-based properties: what
//! the inventory, the payment gateway, the order and the mailer really did,
//! as opposed to what the saga believes.

use std::collections::VecDeque;

use checkout_messages::payloads::inventory::RejectionCode;
use checkout_messages::payloads::notification::NotificationKind;
use checkout_messages::payloads::payment::DeclineCode;
use checkout_saga::{Command, Input};

use crate::common;
use crate::common::pricing;

#[derive(Clone, Copy, Debug)]
pub enum Card {
    Approves,
    Declines,
    NeverAnswers,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stock {
    None,
    Held,
    Released,
    Committed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Money {
    None,
    /// The gateway has not answered; it may still approve.
    Pending,
    Authorized,
    Declined,
    Voided,
    Captured,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    Pending,
    Confirmed,
    Cancelled,
}

/// What the participants really did, as opposed to what the saga believes.
pub struct World {
    pub in_stock: bool,
    pub card: Card,
    pub stock: Stock,
    pub money: Money,
    pub order: Order,
    pub emails: Vec<NotificationKind>,
    pub queues: [VecDeque<Input>; 4],
    /// The void arrived while the gateway had not answered: it may still approve.
    pub voided_while_pending: bool,
}

pub const INVENTORY: usize = 0;
pub const PAYMENT: usize = 1;
pub const ORDER: usize = 2;
pub const NOTIFICATION: usize = 3;

impl World {
    /// A participant handles a command (idempotently, like the real services) and queues its reply.
    pub fn execute(&mut self, command: &Command) {
        let (queue, reply) = match command {
            Command::ReserveInventory { .. } => (INVENTORY, Some(self.reserve())),
            Command::ReleaseInventory => (INVENTORY, Some(self.release())),
            Command::CommitInventory => (INVENTORY, Some(self.commit())),
            Command::AuthorizePayment { .. } => (PAYMENT, self.authorize()),
            Command::VoidPayment => (PAYMENT, self.void()),
            Command::CapturePayment { .. } => (PAYMENT, self.capture()),
            Command::ConfirmOrder { .. } => (ORDER, self.set_order(Order::Confirmed, Input::OrderConfirmed)),
            Command::CancelOrder { .. } => (ORDER, self.set_order(Order::Cancelled, Input::OrderCancelled)),
            Command::NotifyOrderConfirmed { .. } => (NOTIFICATION, Some(self.email(NotificationKind::OrderConfirmed))),
            Command::NotifyOrderCancelled { .. } => (NOTIFICATION, Some(self.email(NotificationKind::OrderCancelled))),
        };
        if let Some(reply) = reply {
            self.queues[queue].push_back(reply);
        }
    }

    pub fn reserve(&mut self) -> Input {
        let sku = checkout_domain::Sku::parse("TEE").unwrap();
        match self.stock {
            Stock::Held | Stock::Committed => Input::InventoryReserved { pricing: pricing() },
            Stock::Released => Input::InventoryRejected { code: RejectionCode::Other, sku, detail: "released".into() },
            Stock::None if self.in_stock => {
                self.stock = Stock::Held;
                Input::InventoryReserved { pricing: pricing() }
            }
            Stock::None => Input::InventoryRejected { code: RejectionCode::OutOfStock, sku, detail: "sold out".into() },
        }
    }

    pub fn release(&mut self) -> Input {
        // Committed stock goes back on the shelf too (it is committed before the pivot).
        if matches!(self.stock, Stock::Held | Stock::Committed) {
            self.stock = Stock::Released;
        }
        Input::InventoryReleased
    }

    pub fn commit(&mut self) -> Input {
        match self.stock {
            Stock::Held | Stock::Committed => {
                self.stock = Stock::Committed;
                Input::InventoryCommitted
            }
            // The hold expired and the stock went to another order.
            Stock::Released | Stock::None => Input::InventoryCommitRejected { detail: "hold expired".into() },
        }
    }

    pub fn authorize(&mut self) -> Option<Input> {
        match (self.money, self.card) {
            (Money::Authorized | Money::Captured, _) => Some(common::authorized()),
            (Money::Voided, _) => {
                Some(Input::PaymentDeclined { code: DeclineCode::AlreadyVoided, detail: "voided".into() })
            }
            (Money::Declined, _) | (_, Card::Declines) => {
                self.money = Money::Declined;
                Some(Input::PaymentDeclined { code: DeclineCode::CardDeclined, detail: "declined".into() })
            }
            (_, Card::NeverAnswers) => {
                self.money = Money::Pending;
                None
            }
            (_, Card::Approves) => {
                self.money = Money::Authorized;
                Some(common::authorized())
            }
        }
    }

    pub fn void(&mut self) -> Option<Input> {
        // A captured payment cannot be voided; the real service dead-letters the command.
        if self.money == Money::Captured {
            return None;
        }
        self.voided_while_pending |= self.money == Money::Pending;
        self.money = Money::Voided;
        Some(Input::PaymentVoided)
    }

    pub fn capture(&mut self) -> Option<Input> {
        match self.money {
            Money::Authorized | Money::Captured => {
                self.money = Money::Captured;
                Some(Input::PaymentCaptured { amount: pricing().total() })
            }
            _ => None,
        }
    }

    pub fn set_order(&mut self, target: Order, reply: Input) -> Option<Input> {
        // An order never changes its mind; the real service dead-letters the contradiction.
        if self.order == Order::Pending || self.order == target {
            self.order = target;
            Some(reply)
        } else {
            None
        }
    }

    /// One email per order outcome, however often the command arrives.
    pub fn email(&mut self, kind: NotificationKind) -> Input {
        if !self.emails.contains(&kind) {
            self.emails.push(kind);
        }
        Input::CustomerNotified { kind }
    }
}
