DROP TABLE email_suppressions;
DROP TABLE email_templates;
DROP TABLE email_deliveries;
DROP TABLE email_messages;
