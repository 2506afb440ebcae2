-- Tells waiting readers (`GET /orders/{id}` with `Prefer: wait`) of every
-- instance that an order reached its outcome: a notification on
-- `order_status` carrying the order id, delivered at commit. Only the events
-- that change an order's status notify, so a checkout costs one.
CREATE FUNCTION order_status_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('order_status', NEW.order_id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER order_status_notify
    AFTER INSERT ON order_events
    FOR EACH ROW
    WHEN (NEW.event_type IN ('OrderConfirmed', 'OrderCancelled'))
    EXECUTE FUNCTION order_status_notify();
