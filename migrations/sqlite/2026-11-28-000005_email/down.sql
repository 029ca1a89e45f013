DROP TABLE eb_email_suppressions;
DROP TABLE eb_email_templates;
DROP TABLE eb_email_deliveries;
DROP TABLE eb_email_messages;
