DROP TABLE bridge_state;
DROP TABLE bridge_marks;
DROP TABLE webhook_deliveries;
DROP TABLE webhooks;
DROP TABLE bridge_rules;
