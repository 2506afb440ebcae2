-- One database and one role per service: no service can read another's tables.
CREATE ROLE checkout_order LOGIN PASSWORD 'order';
CREATE DATABASE checkout_order OWNER checkout_order;
CREATE ROLE checkout_orchestrator LOGIN PASSWORD 'orchestrator';
CREATE DATABASE checkout_orchestrator OWNER checkout_orchestrator;
CREATE ROLE checkout_inventory LOGIN PASSWORD 'inventory';
CREATE DATABASE checkout_inventory OWNER checkout_inventory;
CREATE ROLE checkout_payment LOGIN PASSWORD 'payment';
CREATE DATABASE checkout_payment OWNER checkout_payment;
CREATE ROLE checkout_notification LOGIN PASSWORD 'notification';
CREATE DATABASE checkout_notification OWNER checkout_notification;
-- Only its owner may connect to a service's database.
REVOKE CONNECT ON DATABASE checkout_order, checkout_orchestrator, checkout_inventory, checkout_payment, checkout_notification FROM PUBLIC;
