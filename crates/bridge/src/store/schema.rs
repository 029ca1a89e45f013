//! The bridge's tables.

diesel::table! {
    #[sql_name = "eb_bridge_rules"]
    bridge_rules (id) {
        id -> Text,
        name -> Text,
        event_type -> Text,
        filter -> Text,
        actions -> Text,
        enabled -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    #[sql_name = "eb_webhooks"]
    webhooks (id) {
        id -> Text,
        url -> Text,
        event_types -> Text,
        description -> Nullable<Text>,
        secret_sealed -> Text,
        enabled -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    #[sql_name = "eb_webhook_deliveries"]
    webhook_deliveries (id) {
        id -> Text,
        webhook_id -> Text,
        event_id -> Text,
        attempt -> Integer,
        status_code -> Nullable<Integer>,
        error -> Nullable<Text>,
        duration_ms -> BigInt,
        delivered_at -> Timestamp,
    }
}

diesel::table! {
    #[sql_name = "eb_bridge_marks"]
    bridge_marks (mark) {
        mark -> Text,
        created_at -> Timestamp,
    }
}
