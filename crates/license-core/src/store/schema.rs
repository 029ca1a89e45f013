//! The licence tables (portable types; see shared-db's schema for the conventions).

diesel::table! {
    #[sql_name = "eb_licenses"]
    licenses (id) {
        id -> Text,
        product -> Text,
        name -> Text,
        owner_email -> Text,
        status -> Text,
        key_prefix -> Text,
        key_digest -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        expires_at -> Nullable<Timestamp>,
        max_machines -> Nullable<Integer>,
        entitlements -> Text,
        metadata -> Text,
        require_machine -> Bool,
        heartbeat_interval_secs -> Nullable<Integer>,
        last_validated_at -> Nullable<Timestamp>,
        policy_id -> Nullable<Text>,
        heartbeat_cull -> Nullable<Bool>,
        heartbeat_resurrection_secs -> Nullable<Integer>,
        grace_period_secs -> Nullable<BigInt>,
        expiry_strategy -> Nullable<Text>,
        expiry_basis -> Nullable<Text>,
        duration_secs -> Nullable<BigInt>,
        expiry_started_at -> Nullable<Timestamp>,
        grace_started_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    #[sql_name = "eb_machines"]
    machines (id) {
        id -> Text,
        license_id -> Text,
        fingerprint -> Text,
        name -> Nullable<Text>,
        platform -> Nullable<Text>,
        hostname -> Nullable<Text>,
        created_at -> Timestamp,
        last_heartbeat_at -> Nullable<Timestamp>,
        dead_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    #[sql_name = "eb_culled_machines"]
    culled_machines (id) {
        id -> Text,
        license_id -> Text,
        fingerprint -> Text,
        name -> Nullable<Text>,
        platform -> Nullable<Text>,
        hostname -> Nullable<Text>,
        created_at -> Timestamp,
        last_heartbeat_at -> Nullable<Timestamp>,
        culled_at -> Timestamp,
        resurrect_until -> Timestamp,
    }
}

diesel::table! {
    #[sql_name = "eb_policies"]
    policies (id) {
        id -> Text,
        product -> Text,
        name -> Text,
        max_machines -> Nullable<Integer>,
        require_machine -> Bool,
        heartbeat_interval_secs -> Nullable<Integer>,
        heartbeat_cull -> Bool,
        heartbeat_resurrection_secs -> Nullable<Integer>,
        grace_period_secs -> Nullable<BigInt>,
        expiry_strategy -> Text,
        expiry_basis -> Text,
        duration_secs -> Nullable<BigInt>,
        entitlements -> Text,
        metadata -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    #[sql_name = "eb_signing_keys"]
    signing_keys (kid) {
        kid -> Text,
        algorithm -> Text,
        public_key -> Text,
        private_key_sealed -> Text,
        created_at -> Timestamp,
    }
}

diesel::joinable!(machines -> licenses (license_id));
diesel::joinable!(licenses -> policies (policy_id));
diesel::allow_tables_to_appear_in_same_query!(licenses, machines, policies);
