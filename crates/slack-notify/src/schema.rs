//! The Slack message table.

diesel::table! {
    #[sql_name = "eb_slack_messages"]
    slack_messages (id) {
        id -> Text,
        channel -> Text,
        level -> Text,
        title -> Text,
        request -> Text,
        status -> Text,
        slack_channel -> Nullable<Text>,
        ts -> Nullable<Text>,
        thread_ts -> Nullable<Text>,
        error -> Nullable<Text>,
        created_by -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        posted_at -> Nullable<Timestamp>,
    }
}
