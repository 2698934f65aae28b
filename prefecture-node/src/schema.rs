//! diesel table definitions, matching migrations/node/{sqlite,postgres}.

diesel::table! {
    nurses (id) {
        id -> Text,
        agency_code -> Text,
        qualification -> Text,
        registration_number -> Text,
        family_name -> Text,
        given_name -> Text,
        family_name_kana -> Text,
        given_name_kana -> Text,
        birth_date -> Date,
        email -> Text,
        phone -> Nullable<Text>,
        max_distance_km -> Integer,
        created_at -> Timestamp,
        proofing_method -> Nullable<Text>,
        proofed_at -> Nullable<Timestamp>,
        proofed_by -> Nullable<Text>,
        proofing_document -> Nullable<Text>,
        search_key -> Text,
        digest_cadence -> Text,
        employment_filter -> Text,
        bouncing_since -> Nullable<Timestamp>,
        bounce_reason -> Nullable<Text>,
    }
}

diesel::table! {
    notices (id) {
        id -> Text,
        nurse_id -> Text,
        kind -> Text,
        body -> Text,
        channel -> Text,
        entered_by -> Nullable<Text>,
        filed_at -> Timestamp,
        proofing -> Text,
        receipt -> Nullable<Text>,
        received_on -> Nullable<Date>,
    }
}

diesel::table! {
    consents (id) {
        id -> Text,
        nurse_id -> Text,
        scope -> Text,
        granted -> Bool,
        version -> Integer,
        text_version -> Text,
        text_sha256 -> Text,
        channel -> Text,
        entered_by -> Nullable<Text>,
        recorded_at -> Timestamp,
        proofing -> Text,
        receipt -> Nullable<Text>,
    }
}

diesel::table! {
    outbox (seq) {
        seq -> BigInt,
        event_id -> Text,
        kind -> Text,
        nurse_id -> Nullable<Text>,
        payload -> Text,
        created_at -> Timestamp,
        parked_reason -> Nullable<Text>,
        version -> Integer,
        parked_code -> Nullable<Text>,
    }
}

diesel::table! {
    sync_state (name) {
        name -> Text,
        value -> BigInt,
    }
}

diesel::table! {
    sequences (name) {
        name -> Text,
        last_value -> BigInt,
    }
}

diesel::joinable!(notices -> nurses (nurse_id));
diesel::joinable!(consents -> nurses (nurse_id));
diesel::allow_tables_to_appear_in_same_query!(nurses, notices, consents, outbox, sequences, sync_state);

diesel::table! {
    inbox (seq) {
        seq -> BigInt,
        event_id -> Text,
        kind -> Text,
        payload -> Text,
        received_at -> Timestamp,
        version -> Integer,
        state -> Text,
        reason -> Nullable<Text>,
        nurse_id -> Nullable<Text>,
    }
}

diesel::table! {
    withdrawal_confirmations (nurse_id, scope, version) {
        nurse_id -> Text,
        scope -> Text,
        version -> Integer,
        notices_deleted -> BigInt,
        confirmed_at -> Timestamp,
    }
}

diesel::table! {
    login_links (token_sha256) {
        token_sha256 -> Text,
        nurse_id -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    api_tokens (token_sha256) {
        token_sha256 -> Text,
        staff_id -> Text,
        label -> Text,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
    }
}

// Staff accounts, sessions and sign-in attempts are defined with their code in ncf_shared::accounts
// (another crate's tables cannot be joined to these, so an API token's staff member is a second read).
pub use ncf_shared::accounts::schema::{sessions, sign_in_attempts, staff};

diesel::table! {
    pending_opt_ins (token_sha256) {
        token_sha256 -> Text,
        email -> Text,
        form -> Text,
        failures -> Integer,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    proofing_letters (letter_id) {
        letter_id -> Text,
        nurse_id -> Text,
        requested_at -> Timestamp,
        valid_days -> Integer,
    }
}

diesel::table! {
    staff_alerts (id) {
        id -> Text,
        kind -> Text,
        detail -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    mail_outbox (id) {
        id -> Text,
        to_address -> Text,
        subject -> Text,
        body -> Text,
        state -> Text,
        created_at -> Timestamp,
        expires_at -> Nullable<Timestamp>,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        last_error -> Nullable<Text>,
        finished_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    nurse_sign_in_requests (id) {
        id -> Text,
        address_sha256 -> Text,
        client -> Text,
        requested_at -> Timestamp,
    }
}

diesel::table! {
    receipts (number) {
        number -> Text,
        nurse_id -> Text,
        kind -> Text,
        channel -> Text,
        issued_at -> Timestamp,
        submission -> Nullable<Text>,
    }
}

diesel::table! {
    bulk_uploads (sha256) {
        sha256 -> Text,
        uploaded_at -> Timestamp,
        staff_id -> Text,
        file_name -> Text,
        saved -> Integer,
    }
}

diesel::allow_tables_to_appear_in_same_query!(receipts, nurses);

diesel::table! {
    national_status (nurse_id) {
        nurse_id -> Text,
        latent -> Nullable<Bool>,
        home_here -> Nullable<Bool>,
        residence -> Nullable<Text>,
        decided_at -> Nullable<Timestamp>,
        moved_out_at -> Nullable<Timestamp>,
        moved_out_to -> Nullable<Text>,
        erased_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    transfers_in (transfer_id) {
        transfer_id -> Text,
        agency_code -> Text,
        from_prefecture -> Text,
        family_name -> Text,
        given_name -> Text,
        email -> Text,
        phone -> Nullable<Text>,
        qualification -> Text,
        registration_number -> Text,
        family_name_kana -> Text,
        given_name_kana -> Text,
        birth_date -> Date,
        proofing_method -> Text,
        received_at -> Timestamp,
        token_sha256 -> Nullable<Text>,
        invited_at -> Nullable<Timestamp>,
        confirmed_at -> Nullable<Timestamp>,
        nurse_id -> Nullable<Text>,
    }
}

diesel::table! {
    reminders (id) {
        id -> Text,
        nurse_id -> Text,
        kind -> Text,
        since -> Date,
        received_at -> Timestamp,
    }
}

diesel::table! {
    postings (id) {
        id -> Text,
        kind -> Text,
        title -> Text,
        body -> Text,
        version -> BigInt,
        synced_version -> BigInt,
        refused_reason -> Nullable<Text>,
        valid_from -> Date,
        valid_until -> Date,
        withdrawn_at -> Nullable<Timestamp>,
        created_by -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    matched_postings (prefecture, posting_id) {
        prefecture -> Text,
        posting_id -> Text,
        version -> BigInt,
        body -> Text,
    }
}

diesel::table! {
    nurse_matches (nurse_id, prefecture, posting_id) {
        nurse_id -> Text,
        kind -> Text,
        prefecture -> Text,
        posting_id -> Text,
        distance_m -> Integer,
        matched_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(nurse_matches, matched_postings);

diesel::table! {
    digests (id) {
        id -> Text,
        nurse_id -> Text,
        period -> Text,
        message_id -> Text,
        postings -> Text,
        state -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(digests -> nurses (nurse_id));
diesel::allow_tables_to_appear_in_same_query!(digests, nurses);

diesel::table! {
    training_wishes (id) {
        id -> Text,
        nurse_id -> Text,
        prefecture -> Text,
        posting_id -> Text,
        title -> Text,
        facility_name -> Text,
        starts_on -> Date,
        ends_on -> Date,
        planned_hours -> Integer,
        consent_text_sha256 -> Text,
        state -> Text,
        refused_reason -> Nullable<Text>,
        requested_at -> Timestamp,
        attended -> Nullable<Bool>,
        hours -> Nullable<Integer>,
        recorded_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    training_applicants (from_prefecture, wish_id) {
        from_prefecture -> Text,
        wish_id -> Text,
        posting_id -> Text,
        agency_code -> Text,
        family_name -> Text,
        given_name -> Text,
        family_name_kana -> Text,
        given_name_kana -> Text,
        qualification -> Text,
        email -> Text,
        phone -> Nullable<Text>,
        proofing_method -> Text,
        received_at -> Timestamp,
        attended -> Nullable<Bool>,
        hours -> Nullable<Integer>,
        recorded_at -> Nullable<Timestamp>,
        recorded_by -> Nullable<Text>,
    }
}
