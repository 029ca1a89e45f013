DROP INDEX eb_webhook_deliveries_time;
DROP INDEX eb_slack_messages_updated;
DROP INDEX eb_email_messages_updated;
