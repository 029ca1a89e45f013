//! The email tables.

diesel::table! {
    #[sql_name = "eb_email_messages"]
    email_messages (id) {
        id -> Text,
        batch_id -> Nullable<Text>,
        from_addr -> Text,
        subject -> Text,
        status -> Text,
        template -> Nullable<Text>,
        summary -> Text,
        raw_mime -> Binary,
        size -> BigInt,
        error -> Nullable<Text>,
        created_by -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    #[sql_name = "eb_email_deliveries"]
    email_deliveries (id) {
        id -> Text,
        email_id -> Text,
        seq -> Integer,
        recipients -> Text,
        suppressed -> Nullable<Text>,
        status -> Text,
        provider_id -> Nullable<Text>,
        error -> Nullable<Text>,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    #[sql_name = "eb_email_templates"]
    email_templates (name) {
        name -> Text,
        subject -> Text,
        html -> Nullable<Text>,
        text -> Nullable<Text>,
        description -> Nullable<Text>,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    #[sql_name = "eb_email_suppressions"]
    email_suppressions (address) {
        address -> Text,
        reason -> Text,
        detail -> Nullable<Text>,
        email_id -> Nullable<Text>,
        created_at -> Timestamp,
    }
}
