-- Retention prunes the oldest finished rows first, in batches: these indexes let each
-- batch find them without scanning the whole table.
CREATE INDEX eb_email_messages_updated ON eb_email_messages (updated_at);
CREATE INDEX eb_slack_messages_updated ON eb_slack_messages (updated_at);
CREATE INDEX eb_webhook_deliveries_time ON eb_webhook_deliveries (delivered_at);
