//! What a payment command means given the payment's record: pure decisions,
//! so every combination can be tested without a database or a gateway.

use checkout_domain::Money;
use checkout_messages::Message;
use checkout_messages::payloads::payment::{
    DeclineCode, PaymentAuthorized, PaymentCaptured, PaymentDeclined, PaymentRefunded, PaymentVoided,
};

/// A payment's status, stored as its snake_case name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "TEXT", rename_all = "snake_case")]
pub enum Status {
    /// The gateway was asked to authorize and has not answered.
    Authorizing,
    Authorized,
    Declined,
    Voided,
    Captured,
    Refunded,
}

impl Status {
    /// The name stored and shown (the same as sqlx's).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authorizing => "authorizing",
            Self::Authorized => "authorized",
            Self::Declined => "declined",
            Self::Voided => "voided",
            Self::Captured => "captured",
            Self::Refunded => "refunded",
        }
    }
}

/// A payment as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payment {
    pub status: Status,
    pub amount: Option<Money>,
    pub authorization_id: Option<String>,
    pub decline: Option<(DeclineCode, String)>,
}

/// What to do for a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Answer from the record: the gateway already did what is asked.
    Reply(Message),
    /// Ask the gateway to authorize (again, if it never answered).
    Authorize,
    Capture {
        authorization_id: String,
        amount: Money,
    },
    Void {
        authorization_id: Option<String>,
    },
    Refund {
        authorization_id: String,
        amount: Money,
    },
    /// The command contradicts the record: nothing sensible to do.
    Refuse(String),
}

pub fn plan(payment: Option<&Payment>, command: &Message) -> Plan {
    match command {
        Message::AuthorizePayment(command) => plan_authorize(payment, command.amount),
        Message::CapturePayment(command) => plan_capture(payment, command.amount),
        Message::VoidPayment(_) => plan_void(payment),
        Message::RefundPayment(command) => plan_refund(payment, command.amount),
        other => Plan::Refuse(format!("{} is not a payment command", other.message_type())),
    }
}

fn plan_authorize(payment: Option<&Payment>, amount: Money) -> Plan {
    let Some(payment) = payment else { return Plan::Authorize };
    if payment.amount.is_some_and(|recorded| recorded != amount) {
        return Plan::Refuse(format!("authorization for {amount} differs from the recorded {:?}", payment.amount));
    }
    match (payment.status, &payment.authorization_id, &payment.decline) {
        (Status::Authorizing, ..) => Plan::Authorize,
        (Status::Authorized | Status::Captured | Status::Refunded, Some(id), _) => {
            Plan::Reply(PaymentAuthorized { authorization_id: id.clone(), amount }.into())
        }
        (Status::Declined, _, Some((code, detail))) => {
            Plan::Reply(PaymentDeclined { code: *code, detail: detail.clone() }.into())
        }
        (Status::Voided, ..) => Plan::Reply(
            PaymentDeclined {
                code: DeclineCode::AlreadyVoided,
                detail: "the payment was voided before it was authorized".into(),
            }
            .into(),
        ),
        (status, ..) => Plan::Refuse(format!("payment record is {} without its details", status.as_str())),
    }
}

fn plan_capture(payment: Option<&Payment>, amount: Money) -> Plan {
    match payment {
        Some(Payment { status: Status::Authorized, authorization_id: Some(id), amount: Some(authorized), .. }) => {
            if *authorized == amount {
                Plan::Capture { authorization_id: id.clone(), amount }
            } else {
                Plan::Refuse(format!("capture of {amount} differs from the authorized {authorized}"))
            }
        }
        Some(Payment { status: Status::Captured, amount: Some(captured), .. }) if *captured == amount => {
            Plan::Reply(PaymentCaptured { amount }.into())
        }
        Some(payment) => Plan::Refuse(format!("cannot capture a payment that is {}", payment.status.as_str())),
        None => Plan::Refuse("cannot capture: no payment was authorized for this order".into()),
    }
}

fn plan_void(payment: Option<&Payment>) -> Plan {
    match payment {
        // Nothing held: record the void so a late authorization is refused.
        None => Plan::Void { authorization_id: None },
        Some(payment) => match payment.status {
            Status::Authorizing | Status::Authorized => {
                Plan::Void { authorization_id: payment.authorization_id.clone() }
            }
            Status::Declined | Status::Voided => Plan::Reply(PaymentVoided {}.into()),
            Status::Captured | Status::Refunded => {
                Plan::Refuse(format!("cannot void a payment that is {}; refund it instead", payment.status.as_str()))
            }
        },
    }
}

fn plan_refund(payment: Option<&Payment>, amount: Money) -> Plan {
    match payment {
        Some(Payment { status: Status::Captured, authorization_id: Some(id), amount: Some(captured), .. }) => {
            let within = amount.currency() == captured.currency() && amount.amount_minor() <= captured.amount_minor();
            if within {
                Plan::Refund { authorization_id: id.clone(), amount }
            } else {
                Plan::Refuse(format!("refund of {amount} exceeds the captured {captured}"))
            }
        }
        Some(Payment { status: Status::Refunded, .. }) => Plan::Reply(PaymentRefunded { amount }.into()),
        Some(payment) => Plan::Refuse(format!("cannot refund a payment that is {}", payment.status.as_str())),
        None => Plan::Refuse("cannot refund: no payment was captured for this order".into()),
    }
}

#[cfg(test)]
mod tests {
    use checkout_domain::{CardToken, Currency};
    use checkout_messages::payloads::payment::{AuthorizePayment, CapturePayment, RefundPayment, VoidPayment};

    use super::*;

    fn eur(minor: i64) -> Money {
        Money::new(minor, Currency::EUR).unwrap()
    }

    fn payment(status: Status) -> Payment {
        Payment { status, amount: Some(eur(4499)), authorization_id: Some("auth-1".into()), decline: None }
    }

    fn authorize() -> Message {
        AuthorizePayment { amount: eur(4499), card_token: CardToken::parse("tok_visa").unwrap() }.into()
    }

    #[test]
    fn a_new_or_unanswered_authorization_asks_the_gateway() {
        assert_eq!(plan(None, &authorize()), Plan::Authorize);
        assert_eq!(plan(Some(&payment(Status::Authorizing)), &authorize()), Plan::Authorize);
    }

    #[test]
    fn a_repeated_authorization_is_answered_from_the_record() {
        assert!(matches!(
            plan(Some(&payment(Status::Authorized)), &authorize()),
            Plan::Reply(Message::PaymentAuthorized(_))
        ));
        let declined = Payment {
            status: Status::Declined,
            decline: Some((DeclineCode::CardDeclined, "no".into())),
            ..payment(Status::Declined)
        };
        assert!(matches!(plan(Some(&declined), &authorize()), Plan::Reply(Message::PaymentDeclined(_))));
    }

    #[test]
    fn an_authorization_after_a_void_is_declined() {
        let Plan::Reply(Message::PaymentDeclined(declined)) = plan(Some(&payment(Status::Voided)), &authorize()) else {
            panic!()
        };
        assert_eq!(declined.code, DeclineCode::AlreadyVoided);
    }

    #[test]
    fn a_void_releases_holds_pending_or_approved_and_tombstones_missing_ones() {
        assert_eq!(plan(None, &VoidPayment {}.into()), Plan::Void { authorization_id: None });
        assert_eq!(
            plan(Some(&payment(Status::Authorizing)), &VoidPayment {}.into()),
            Plan::Void { authorization_id: Some("auth-1".into()) }
        );
        assert!(matches!(plan(Some(&payment(Status::Voided)), &VoidPayment {}.into()), Plan::Reply(_)));
        assert!(matches!(plan(Some(&payment(Status::Captured)), &VoidPayment {}.into()), Plan::Refuse(_)));
    }

    #[test]
    fn only_the_authorized_amount_can_be_captured_and_only_once() {
        assert!(matches!(
            plan(Some(&payment(Status::Authorized)), &CapturePayment { amount: eur(4499) }.into()),
            Plan::Capture { .. }
        ));
        assert!(matches!(
            plan(Some(&payment(Status::Authorized)), &CapturePayment { amount: eur(1) }.into()),
            Plan::Refuse(_)
        ));
        assert!(matches!(
            plan(Some(&payment(Status::Captured)), &CapturePayment { amount: eur(4499) }.into()),
            Plan::Reply(_)
        ));
        assert!(matches!(
            plan(Some(&payment(Status::Captured)), &CapturePayment { amount: eur(1) }.into()),
            Plan::Refuse(_)
        ));
        assert!(matches!(
            plan(Some(&payment(Status::Voided)), &CapturePayment { amount: eur(4499) }.into()),
            Plan::Refuse(_)
        ));
    }

    #[test]
    fn refunds_are_bounded_by_the_capture() {
        assert!(matches!(
            plan(Some(&payment(Status::Captured)), &RefundPayment { amount: eur(4499) }.into()),
            Plan::Refund { .. }
        ));
        assert!(matches!(
            plan(Some(&payment(Status::Captured)), &RefundPayment { amount: eur(4500) }.into()),
            Plan::Refuse(_)
        ));
        assert!(matches!(
            plan(Some(&payment(Status::Authorized)), &RefundPayment { amount: eur(1) }.into()),
            Plan::Refuse(_)
        ));
    }
}
