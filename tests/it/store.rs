//! The store against a real migrated SQLite file: migrations, the run lease, runs.

use crate::common;

use chrono::Duration;
use common::{World, at};
use herald::store::{
    ChannelDelivery, LeaseOutcome, NewMessage, Store, Ts, enqueue_channel_in, host_name,
};

#[tokio::test]
async fn migrations_apply_once_and_the_database_answers() {
    let world = World::new().await;
    let store = Store::connect(&world.sandbox.db_url())
        .await
        .expect("connect");
    let applied = store.migrate().await.expect("migrate");
    assert_eq!(applied, Store::known_migrations());
    assert!(
        store.migrate().await.expect("again").is_empty(),
        "nothing left to apply"
    );
    store.ping().await.expect("ping");
    let reopened = Store::open(&world.sandbox.db_url())
        .await
        .expect("open existing");
    assert_eq!(reopened.counts().await.expect("counts"), (0, 0));
    if !world.sandbox.on_postgres() {
        assert!(
            world.sandbox.path("herald.db-wal").exists(),
            "the database runs in WAL mode"
        );
    }
}

#[tokio::test]
async fn the_lease_admits_one_holder_at_a_time() {
    let world = World::new().await;
    let store = Store::open(&world.sandbox.db_url()).await.expect("open");
    let t0 = at("2026-11-22T06:00:00Z");
    let ttl = Duration::seconds(120);
    // Holders on another host: only expiry frees their lease.
    assert_eq!(
        store
            .acquire_lease("otherhost:1:a", "thishost", t0, ttl)
            .await
            .expect("a"),
        LeaseOutcome::Acquired
    );
    match store
        .acquire_lease("otherhost:2:b", "thishost", t0 + Duration::seconds(10), ttl)
        .await
        .expect("b")
    {
        LeaseOutcome::Held {
            holder,
            since,
            expires_at,
        } => {
            assert_eq!(holder, "otherhost:1:a");
            assert_eq!(since, t0);
            assert_eq!(expires_at, t0 + ttl);
        }
        other => panic!("{other:?}"),
    }
    // Renewal keeps it.
    assert!(
        store
            .renew_lease("otherhost:1:a", t0 + Duration::seconds(100), ttl)
            .await
            .expect("renew")
    );
    assert!(matches!(
        store
            .acquire_lease(
                "otherhost:2:b",
                "thishost",
                t0 + Duration::seconds(150),
                ttl
            )
            .await
            .expect("b"),
        LeaseOutcome::Held { .. }
    ));
    // Expired: taken over; the old holder can no longer renew.
    assert_eq!(
        store
            .acquire_lease(
                "otherhost:2:b",
                "thishost",
                t0 + Duration::seconds(400),
                ttl
            )
            .await
            .expect("b"),
        LeaseOutcome::Acquired
    );
    assert!(
        !store
            .renew_lease("otherhost:1:a", t0 + Duration::seconds(401), ttl)
            .await
            .expect("renew")
    );
    // Released: free at once.
    store.release_lease("otherhost:2:b").await.expect("release");
    assert_eq!(
        store
            .acquire_lease("thishost:1:c", "thishost", t0 + Duration::seconds(402), ttl)
            .await
            .expect("c"),
        LeaseOutcome::Acquired
    );
}

#[tokio::test]
async fn a_dead_holder_on_this_host_loses_the_lease_at_once() {
    let world = World::new().await;
    let store = Store::open(&world.sandbox.db_url()).await.expect("open");
    let t0 = at("2026-11-22T06:00:00Z");
    let ttl = Duration::seconds(120);
    // A process that has exited: its pid is free.
    let mut child = std::process::Command::new("true").spawn().expect("spawn");
    let pid = child.id();
    child.wait().expect("wait");
    let dead = format!("thishost:{pid}:x");
    assert_eq!(
        store
            .acquire_lease(&dead, "thishost", t0, ttl)
            .await
            .expect("dead"),
        LeaseOutcome::Acquired
    );
    assert_eq!(
        store
            .acquire_lease("thishost:1:y", "thishost", t0 + Duration::seconds(1), ttl)
            .await
            .expect("y"),
        LeaseOutcome::Acquired,
        "the crashed holder's lease is taken without waiting for expiry"
    );
    // A live holder on this host (this very process) keeps it.
    store.release_lease("thishost:1:y").await.expect("release");
    let live = format!("thishost:{}:z", std::process::id());
    assert_eq!(
        store
            .acquire_lease(&live, "thishost", t0, ttl)
            .await
            .expect("live"),
        LeaseOutcome::Acquired
    );
    assert!(matches!(
        store
            .acquire_lease("thishost:1:w", "thishost", t0 + Duration::seconds(1), ttl)
            .await
            .expect("w"),
        LeaseOutcome::Held { .. }
    ));
}

#[tokio::test]
async fn runs_are_recorded_with_their_summary() {
    let world = World::new().await;
    let store = Store::open(&world.sandbox.db_url()).await.expect("open");
    let id = store
        .start_run("check", at("2026-11-22T06:00:00Z"))
        .await
        .expect("start");
    let running = store.recent_runs(5).await.expect("runs");
    assert_eq!((running[0].id, running[0].status.as_str()), (id, "running"));
    let summary = serde_json::json!({"projects": [], "requests": 3});
    store
        .finish_run(id, "partial", &summary, at("2026-11-22T06:00:02Z"))
        .await
        .expect("finish");
    let done = store.recent_runs(5).await.expect("runs");
    assert_eq!(done[0].status, "partial");
    assert_eq!(done[0].finished_at, Some(at("2026-11-22T06:00:02Z")));
    assert_eq!(done[0].summary.as_ref(), Some(&summary));
}

#[tokio::test]
async fn bad_database_urls_are_refused_clearly() {
    for (url, needle) in [
        ("mysql://localhost/herald", "use sqlite://PATH"),
        // Nothing listens on port 1: the server's refusal at once, not a pool timeout.
        (
            "postgres://herald:hunter2@127.0.0.1:1/herald",
            "postgres://herald:***@127.0.0.1:1/herald: error communicating with database: Connection refused",
        ),
        ("sqlite://:memory:", "a database file is required"),
        (
            "sqlite:///no/such/folder/h.db",
            "the folder /no/such/folder does not exist",
        ),
    ] {
        let err = Store::open(url).await.expect_err(url).to_string();
        assert!(err.contains(needle), "{url}: {err}");
    }
}

/// A claim frees a dead dispatcher's claims of its own medium only, which it then claims in
/// the same transaction. Another medium's rows are left to that medium's claim: on
/// PostgreSQL that claim may have skipped them while they were locked, and ended, which left
/// them `sending` until the dead claim's window ran out.
#[tokio::test]
async fn a_claim_frees_only_the_dead_claims_of_its_own_medium() {
    let world = World::new().await;
    let store = Store::open(&world.sandbox.db_url()).await.expect("open");
    let t0 = at("2026-11-22T06:00:00Z");
    let window = Duration::seconds(600);
    common::queue_test_messages(&store, 2, t0).await;
    let mut tx = store.begin().await.expect("begin");
    for key in ["a", "b"] {
        let delivery = ChannelDelivery {
            channel: "hook",
            kind: "test",
            subject_key: key,
            payload: &serde_json::json!({}),
            delivery_id: key,
        };
        enqueue_channel_in(&mut tx, &delivery, t0)
            .await
            .expect("queue");
    }
    tx.commit().await.expect("commit");
    let channels = ["hook".to_string()];
    let mut child = std::process::Command::new("true").spawn().expect("spawn");
    let dead = format!("{}:{}:dead", host_name(), child.id());
    child.wait().expect("wait");
    let mail = store.claim_due(&dead, t0, 10, t0 + window, None).await;
    assert_eq!(mail.expect("claim").len(), 2);
    let posts = store
        .claim_due_channels(&dead, t0, 10, t0 + window, None, &channels)
        .await;
    assert_eq!(posts.expect("claim").len(), 2);

    let t1 = t0 + Duration::seconds(1);
    let newcomer = format!("{}:{}:new", host_name(), std::process::id());
    let mail = store.claim_due(&newcomer, t1, 10, t1 + window, None).await;
    assert_eq!(mail.expect("claim").len(), 2, "the dead one's mail");
    // The channel deliveries are still held until the dead claim's window ends.
    const HELD: &str =
        "SELECT COUNT(*) FROM outbox WHERE channel IS NOT NULL AND claimed_until > $1";
    let held: i64 = if world.sandbox.on_postgres() {
        let pool = sqlx::PgPool::connect(&world.sandbox.db_url())
            .await
            .expect("pool");
        sqlx::query_scalar(HELD).bind(Ts(t1)).fetch_one(&pool).await
    } else {
        let pool = sqlx::SqlitePool::connect(&world.sandbox.db_url())
            .await
            .expect("pool");
        sqlx::query_scalar(HELD).bind(Ts(t1)).fetch_one(&pool).await
    }
    .expect("count");
    assert_eq!(held, 2, "a mail claim left the channel claims alone");
    // The channels' own claim frees and takes them.
    let posts = store
        .claim_due_channels(&newcomer, t1, 10, t1 + window, None, &channels)
        .await;
    assert_eq!(posts.expect("claim").len(), 2, "the dead one's deliveries");
}

#[tokio::test]
async fn claims_of_a_dead_dispatcher_on_this_host_are_taken_over_at_once() {
    let world = World::new().await;
    let store = Store::open(&world.sandbox.db_url()).await.expect("open");
    let t0 = at("2026-11-22T06:00:00Z");
    let window = Duration::seconds(600);
    common::queue_test_messages(&store, 6, t0).await;
    let host = host_name();
    // A dispatcher on this host that has exited, one on another host, one alive here (us).
    let mut child = std::process::Command::new("true").spawn().expect("spawn");
    let pid = child.id();
    child.wait().expect("wait");
    let dead = format!("{host}:{pid}:dead");
    let remote = "elsewhere:1:remote";
    let alive = format!("{host}:{}:alive", std::process::id());
    for holder in [remote, alive.as_str(), dead.as_str()] {
        let claimed = store
            .claim_due(holder, t0, 2, t0 + window, None)
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 2, "{holder}");
    }
    // A second later, a new dispatcher here gets exactly the dead one's two messages.
    let t1 = t0 + Duration::seconds(1);
    let newcomer = format!("{host}:{}:new", std::process::id());
    let taken = store
        .claim_due(&newcomer, t1, 10, t1 + window, None)
        .await
        .expect("claim");
    let recipients: Vec<&str> = taken.iter().map(|r| r.recipient.as_str()).collect();
    assert_eq!(recipients, ["op4@example.org", "op5@example.org"]);
    // The remote and the live claims wait for their window.
    let later = store
        .claim_due(
            &newcomer,
            t0 + Duration::seconds(599),
            10,
            t1 + window,
            None,
        )
        .await
        .expect("claim");
    // A claim hands out only what it claims now: the newcomer's two (held until t1 + window)
    // are not handed out again, so a dispatcher never gets back a message it already sent and
    // whose answer is still being recorded.
    assert!(later.is_empty(), "nothing new before the window ends");
    let expired = store
        .claim_due(
            &newcomer,
            t0 + Duration::seconds(601),
            10,
            t1 + window,
            None,
        )
        .await
        .expect("claim");
    let recipients: Vec<&str> = expired.iter().map(|r| r.recipient.as_str()).collect();
    assert_eq!(
        recipients,
        [
            "op0@example.org",
            "op1@example.org",
            "op2@example.org",
            "op3@example.org"
        ],
        "after the window the remote and the live claims are free"
    );
}

/// Many messages queued in one statement: in order, each stored exactly as one queued alone
/// (payload text, Message-ID, times), a message already queued for its recipient and subject
/// key skipped, and the count of those queued returned.
#[tokio::test]
async fn messages_queued_together_are_stored_as_one_by_one() {
    let world = World::new().await;
    let (app, _) = world.app().build().await;
    let store = &app.store;
    let t0 = at("2026-11-22T06:00:00Z");
    let recipients = ["a@example.org", "b@example.org", "c@example.org"];
    let mut ids = Vec::new();
    for email in recipients {
        ids.push(common::subscribe_instant(&app, email, "pretalx").await);
    }
    let payload = serde_json::json!({"release_ids": [9, 8], "note": "é \"quoted\""});
    let message = |i: usize| NewMessage {
        subscriber_id: Some(ids[i]),
        recipient: recipients[i],
        kind: "new_releases",
        subject_key: "releases:pretalx:2026.2.1",
        payload: &payload,
        message_id: ["<a@x>", "<b@x>", "<c@x>"][i % 3],
    };
    store.enqueue(&message(1), t0).await.expect("one alone");
    let mut tx = store.begin().await.expect("begin");
    let batch = [message(0), message(1), message(2)];
    let queued = herald::store::enqueue_all_in(&mut tx, &batch, t0)
        .await
        .expect("together");
    tx.commit().await.expect("commit");
    assert_eq!(queued, 2, "b@example.org was already queued");
    let rows = store.outbox(&[], i64::MAX).await.expect("outbox");
    let recipients: Vec<&str> = rows.iter().map(|r| r.recipient.as_str()).collect();
    assert_eq!(rows.len(), 3, "{recipients:?}");
    let mut by_id = rows.clone();
    by_id.sort_by_key(|r| r.id);
    let order: Vec<&str> = by_id.iter().map(|r| r.recipient.as_str()).collect();
    assert_eq!(order, ["b@example.org", "a@example.org", "c@example.org"]);
    for row in &rows {
        assert_eq!(row.payload.to_string(), payload.to_string(), "{row:?}");
        assert_eq!(row.kind, "new_releases");
        assert_eq!(row.status, "queued");
        assert_eq!(row.next_attempt_at, t0);
        assert_eq!(row.created_at, t0);
    }
    let c = by_id
        .iter()
        .find(|r| r.recipient == "c@example.org")
        .expect("c");
    assert_eq!(c.message_id, "<c@x>");
    assert_eq!(c.subscriber_id, Some(ids[2]));
}

/// A relay's or a receiver's answer with a NUL character (which PostgreSQL's text cannot
/// hold) is recorded without it, on either backend, however it is recorded: acceptances in
/// one statement (alone, and beside failures), a retry, a dead letter, one acceptance, a
/// channel disabled by its receiver's answer.
#[tokio::test]
async fn answers_with_nul_are_recorded_without_it() {
    use herald::store::Answer;
    let world = World::new().await;
    let store = Store::open(&world.sandbox.db_url()).await.expect("open");
    let t0 = at("2026-11-22T06:00:00Z");
    common::queue_test_messages(&store, 5, t0).await;
    let window = t0 + Duration::seconds(600);
    let claimed = store
        .claim_due("here:1:me", t0, 5, window, None)
        .await
        .expect("claim");
    let ids: Vec<i64> = claimed.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), 5);
    let mut book = store.answer_book();
    let mixed = [
        Answer::Sent {
            id: ids[0],
            response: "250 2.0.0\0 queued as A".into(),
            scrub: false,
        },
        Answer::Retry {
            id: ids[1],
            response: "451 \0try later".into(),
            next: t0 + Duration::seconds(60),
        },
        Answer::Dead {
            id: ids[2],
            response: "550 no\0 such user\0".into(),
        },
    ];
    book.record(&mixed, None, t0).await.expect("mixed answers");
    let sent = [Answer::Sent {
        id: ids[3],
        response: "\u{0}250 ok".into(),
        scrub: false,
    }];
    book.record(&sent, None, t0)
        .await
        .expect("acceptance alone");
    store
        .mark_sent(ids[4], "250 accepted\0", t0)
        .await
        .expect("mark sent");
    store
        .disable_channel("hook", "410 Gone\0", t0)
        .await
        .expect("disable");

    let mut rows = store.outbox(&[], i64::MAX).await.expect("outbox");
    rows.sort_by_key(|r| r.id);
    let recorded: Vec<(&str, Option<&str>)> = rows
        .iter()
        .map(|r| (r.status.as_str(), r.last_response.as_deref()))
        .collect();
    assert_eq!(
        recorded,
        [
            ("sent", Some("250 2.0.0 queued as A")),
            ("retrying", Some("451 try later")),
            ("dead", Some("550 no such user")),
            ("sent", Some("250 ok")),
            ("sent", Some("250 accepted")),
        ]
    );
    let disabled = store.disabled_channels().await.expect("channels");
    assert_eq!(disabled["hook"].reason, "410 Gone");
}
