//! diesel table definitions, matching migrations/national/{sqlite,postgres}.

diesel::table! {
    imports (id) {
        id -> Text,
        kind -> Text,
        file_name -> Text,
        file_sha256 -> Text,
        mode -> Text,
        started_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
        rows_total -> BigInt,
        rows_inserted -> BigInt,
        rows_updated -> BigInt,
        rows_unchanged -> BigInt,
        rows_rejected -> BigInt,
    }
}

diesel::table! {
    licences (qualification, registration_number) {
        qualification -> Text,
        registration_number -> Text,
        person_key -> Binary,
        person_no -> BigInt,
        registered_on -> Date,
        family_name -> Text,
        given_name -> Text,
        family_name_kana -> Text,
        given_name_kana -> Text,
        birth_date -> Date,
        sex -> SmallInt,
        status -> Text,
        import_id -> Text,
    }
}

diesel::table! {
    resident_events (person_key, event, effective_on) {
        person_key -> Binary,
        event -> Text,
        effective_on -> Date,
        lgcode -> Text,
        address -> Text,
        family_name -> Text,
        given_name -> Text,
        import_id -> Text,
    }
}

diesel::table! {
    residents (person_key) {
        person_key -> Binary,
        lgcode -> Nullable<Text>,
        address -> Nullable<Text>,
        address_since -> Nullable<Date>,
        family_name -> Nullable<Text>,
        given_name -> Nullable<Text>,
        name_since -> Nullable<Date>,
        deceased_on -> Nullable<Date>,
        import_id -> Text,
    }
}

diesel::table! {
    nodes (key_id) {
        key_id -> Text,
        prefecture -> Text,
        public_key -> Text,
        added_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    federation_nonces (key_id, nonce) {
        key_id -> Text,
        nonce -> Text,
        seen_at -> Timestamp,
    }
}

diesel::table! {
    identity_links (prefecture, agency_code) {
        prefecture -> Text,
        agency_code -> Text,
        person_key -> Binary,
        qualification -> Text,
        registration_number -> Text,
        linked_at -> Timestamp,
        proofing_method -> Nullable<Text>,
        proofed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    link_failures (id) {
        id -> Text,
        qualification -> Text,
        registration_number -> Text,
        prefecture -> Text,
        failed_at -> Timestamp,
    }
}

diesel::table! {
    postal_letters (id) {
        id -> Text,
        person_key -> Binary,
        prefecture -> Text,
        agency_code -> Text,
        family_name -> Nullable<Text>,
        given_name -> Nullable<Text>,
        address -> Nullable<Text>,
        requested_at -> Timestamp,
        exported_at -> Nullable<Timestamp>,
        expires_at -> Nullable<Timestamp>,
        code_digest -> Nullable<Text>,
        tries -> Integer,
        spent_at -> Nullable<Timestamp>,
        redeemed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    staff_lookups (id) {
        id -> Text,
        prefecture -> Text,
        staff_id -> Text,
        qualification -> Text,
        registration_number -> Text,
        outcome -> Text,
        looked_up_at -> Timestamp,
    }
}

diesel::joinable!(licences -> imports (import_id));
diesel::joinable!(federation_nonces -> nodes (key_id));
diesel::allow_tables_to_appear_in_same_query!(
    imports,
    licences,
    resident_events,
    residents,
    nodes,
    federation_nonces,
    identity_links,
);

diesel::table! {
    node_cursors (prefecture) {
        prefecture -> Text,
        last_seq -> BigInt,
    }
}

diesel::table! {
    pushed_events (prefecture, seq) {
        prefecture -> Text,
        seq -> BigInt,
        event_id -> Text,
        kind -> Text,
        version -> Integer,
        outcome -> Text,
        reject_code -> Nullable<Text>,
        reason -> Nullable<Text>,
        payload -> Nullable<Text>,
        agency_code -> Nullable<Text>,
        received_at -> Timestamp,
    }
}

diesel::table! {
    nurse_consents (prefecture, agency_code, scope) {
        prefecture -> Text,
        agency_code -> Text,
        scope -> Text,
        granted -> Bool,
        version -> Integer,
        text_sha256 -> Text,
        recorded_at -> Timestamp,
    }
}

diesel::table! {
    nurse_notices (notice_id) {
        notice_id -> Text,
        prefecture -> Text,
        agency_code -> Text,
        kind -> Text,
        body -> Text,
        filed_at -> Timestamp,
        effective_on -> Nullable<Date>,
        working -> Nullable<Bool>,
    }
}

diesel::table! {
    latest_notices (prefecture, agency_code) {
        prefecture -> Text,
        agency_code -> Text,
        effective_on -> Date,
        filed_at -> Timestamp,
        working -> Bool,
    }
}

diesel::table! {
    provisions (seq) {
        seq -> BigInt,
        recorded_at -> Timestamp,
        source -> Text,
        recipient -> Text,
        prefecture -> Text,
        agency_code -> Text,
        fields -> Text,
        purpose -> Text,
        prev_hash -> Text,
        hash -> Text,
    }
}

diesel::table! {
    sequences (name) {
        name -> Text,
        last_value -> BigInt,
    }
}

diesel::table! {
    node_events (prefecture, seq) {
        prefecture -> Text,
        seq -> BigInt,
        event_id -> Text,
        kind -> Text,
        payload -> Text,
        created_at -> Timestamp,
        version -> Integer,
    }
}

diesel::table! {
    person_status (person_key) {
        person_key -> Binary,
        employment -> Text,
        employment_since -> Nullable<Date>,
        latent -> Bool,
        home_prefecture -> Nullable<Text>,
        home_agency_code -> Nullable<Text>,
        residence_prefecture -> Nullable<Text>,
        routed_prefecture -> Nullable<Text>,
        latent_since -> Nullable<Timestamp>,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    told_status (prefecture, agency_code) {
        prefecture -> Text,
        agency_code -> Text,
        latent -> Bool,
        home_here -> Bool,
        residence -> Nullable<Text>,
        told_at -> Timestamp,
    }
}

diesel::table! {
    licence_deletions (qualification, registration_number) {
        qualification -> Text,
        registration_number -> Text,
        person_key -> Binary,
        deleted_on -> Date,
        reason -> Text,
        import_id -> Text,
        recorded_at -> Timestamp,
    }
}

diesel::table! {
    erasures (prefecture, agency_code) {
        prefecture -> Text,
        agency_code -> Text,
        person_key -> Binary,
        decided_at -> Timestamp,
    }
}

diesel::table! {
    transfers (id) {
        id -> Text,
        person_key -> Binary,
        from_prefecture -> Text,
        from_agency_code -> Text,
        to_prefecture -> Text,
        to_agency_code -> Nullable<Text>,
        state -> Text,
        consent_text_sha256 -> Text,
        requested_at -> Timestamp,
        relayed_at -> Nullable<Timestamp>,
        confirmed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    reminders (id) {
        id -> Text,
        person_key -> Binary,
        kind -> Text,
        fact -> Text,
        since -> Date,
        delivery -> Text,
        prefecture -> Nullable<Text>,
        agency_code -> Nullable<Text>,
        created_at -> Timestamp,
        exported_at -> Nullable<Timestamp>,
        resolved_at -> Nullable<Timestamp>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(reminders, residents);
// Rematch narrows these to linked people with a subquery on identity_links (routing/gather.rs).
diesel::allow_tables_to_appear_in_same_query!(identity_links, person_status, licence_deletions);

diesel::table! {
    postings (prefecture, posting_id) {
        prefecture -> Text,
        posting_id -> Text,
        version -> BigInt,
        kind -> Text,
        qualifications -> Integer,
        lat -> Double,
        lng -> Double,
        valid_from -> Date,
        valid_until -> Date,
        withdrawn -> Bool,
        body -> Text,
        received_at -> Timestamp,
    }
}

diesel::table! {
    match_preferences (prefecture, agency_code) {
        prefecture -> Text,
        agency_code -> Text,
        distance_km -> Integer,
        changed_at -> Timestamp,
    }
}

diesel::table! {
    match_entries (person_key, kind, prefecture, posting_id) {
        person_key -> Binary,
        kind -> Text,
        prefecture -> Text,
        posting_id -> Text,
        version -> BigInt,
        distance_m -> Integer,
        home_prefecture -> Text,
        home_agency_code -> Text,
    }
}

diesel::table! {
    training_wishes (home_prefecture, wish_id) {
        home_prefecture -> Text,
        wish_id -> Text,
        home_agency_code -> Text,
        person_key -> Binary,
        publishing_prefecture -> Text,
        posting_id -> Text,
        publisher_agency_code -> Nullable<Text>,
        state -> Text,
        consent_text_sha256 -> Text,
        requested_at -> Timestamp,
        relayed_at -> Nullable<Timestamp>,
        attended -> Nullable<Bool>,
        hours -> Nullable<Integer>,
        recorded_at -> Nullable<Timestamp>,
    }
}

// Matching: people near a posting (residents by municipality, latent by person_status), and
// lists holding a closed posting.
diesel::allow_tables_to_appear_in_same_query!(person_status, residents);
diesel::allow_tables_to_appear_in_same_query!(match_entries, postings);
diesel::allow_tables_to_appear_in_same_query!(training_wishes, postings);

// National staff accounts, sessions and sign-in attempts: the tables of ncf_shared::accounts.
pub use ncf_shared::accounts::schema::{sessions, sign_in_attempts, staff};

diesel::table! {
    figure_cells (figure, month, area, breakdown) {
        month -> Text,
        figure -> Text,
        area -> Text,
        breakdown -> Text,
        value -> BigInt,
    }
}

diesel::table! {
    figure_refreshes (id) {
        id -> Text,
        refreshed_at -> Timestamp,
        millis -> BigInt,
        cells -> BigInt,
    }
}

diesel::table! {
    matched_latent (person_key) {
        person_key -> Binary,
        matched_month -> Text,
        area -> Text,
        back_on -> Nullable<Date>,
    }
}

diesel::table! {
    node_contacts (prefecture) {
        prefecture -> Text,
        last_contact_at -> Timestamp,
        last_push_at -> Nullable<Timestamp>,
        last_pull_at -> Nullable<Timestamp>,
        pulled_after -> BigInt,
    }
}

diesel::table! {
    chain_verifications (id) {
        id -> Text,
        verified_at -> Timestamp,
        entries -> BigInt,
        broken_seq -> Nullable<BigInt>,
        reason -> Nullable<Text>,
    }
}
