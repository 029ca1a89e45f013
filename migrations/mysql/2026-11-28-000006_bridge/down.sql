DROP TABLE eb_bridge_state;
DROP TABLE eb_bridge_marks;
DROP TABLE eb_webhook_deliveries;
DROP TABLE eb_webhooks;
DROP TABLE eb_bridge_rules;
