//! What must hold after any scenario, for the orders and products it used.

use checkout_domain::OrderId;

use super::checkout::{get, payment_status, stock};
use super::stack::Stack;

/// - every order is confirmed or cancelled, and its saga finished;
/// - no order was charged without being confirmed, and every confirmed one was;
/// - stock is conserved: what is on hand plus what was sold equals what there was,
///   and nothing stays reserved.
pub async fn check(stack: &Stack, orders: &[OrderId], products: &[(&str, i32)]) {
    for &order in orders {
        let view = get(stack, "order", &format!("/orders/{order}")).await.body;
        let status = view["status"].as_str().unwrap_or_default().to_owned();
        assert!(status == "CONFIRMED" || status == "CANCELLED", "order {order} is {status}");
        let saga = get(stack, "orchestrator", &format!("/sagas/{order}")).await.body;
        let expected = if status == "CONFIRMED" { "completed" } else { "cancelled" };
        assert_eq!(saga["status"], expected, "saga of {order}: {saga:#}");
        let payment = payment_status(stack, order).await;
        assert_eq!(
            payment.as_deref() == Some("captured"),
            status == "CONFIRMED",
            "order {order} is {status}, payment {payment:?}"
        );
    }
    for &(sku, initial) in products {
        let (on_hand, reserved) = stock(stack, sku).await;
        let sold: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(l.quantity), 0)::BIGINT FROM reservation_lines l JOIN reservations r USING (order_id)
             WHERE l.sku = $1 AND r.status = 'committed'",
        )
        .bind(sku)
        .fetch_one(stack.db("inventory"))
        .await
        .unwrap();
        assert_eq!(i64::from(on_hand) + sold, i64::from(initial), "{sku}: stock not conserved");
        assert_eq!(reserved, 0, "{sku}: stock still reserved");
    }
}
