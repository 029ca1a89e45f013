//! Event Bridge Slack alerts (layouts, transport and delivery service).
