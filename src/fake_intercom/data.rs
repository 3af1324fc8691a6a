//! Deterministic Intercom workspace data derived from the workspace name.
//!
//! The same name always yields the same objects and ids; two names never share an id. The
//! workspace name is visible in every object (`"workspace"` field, `@<name>.example` emails,
//! subjects and bodies mentioning it) so a cross-tenant leak in the gateway is detectable by
//! looking at any response. Shapes follow Intercom's REST models (conversation, contact, company).

use serde_json::{Value, json};

const FIRST: &[&str] = &[
    "Ada", "Grace", "Linus", "Margaret", "Alan", "Barbara", "Ken", "Frances", "Dennis", "Radia",
];
const LAST: &[&str] = &[
    "Lovelace", "Hopper", "Torvalds", "Hamilton", "Turing", "Liskov", "Thompson", "Allen",
    "Ritchie", "Perlman",
];
const SUBJECTS: &[&str] = &[
    "Refund request for order #1042",
    "Cannot log in to the dashboard",
    "Billing question about the Pro plan",
    "Shipping delay on my order",
    "Feature request: dark mode",
    "Password reset email not arriving",
    "API rate limit errors",
    "Please cancel my subscription",
    "Invoice PDF is missing",
    "Shopify integration broken",
    "Refund still pending after two weeks",
    "Thanks for the quick help",
];
const STATES: &[&str] = &["open", "open", "closed", "snoozed"];
const SOURCES: &[&str] = &[
    "conversation",
    "email",
    "email",
    "whatsapp",
    "phone_call",
    "sms",
];
const COMPANIES: &[(&str, &str)] = &[
    ("Retail", "retail"),
    ("Logistics", "logistics"),
    ("Labs", "software"),
];
/// 2025-10-09T11:06:40Z: a fixed epoch keeps timestamps stable across runs.
const EPOCH: u64 = 1_760_008_000;

pub(crate) struct WorkspaceData {
    pub name: String,
    /// Intercom's `app.id_code`, the stable workspace key the gateway stores.
    pub app_id: String,
    pub admin: Value,
    pub conversations: Vec<Value>,
    pub contacts: Vec<Value>,
    pub companies: Vec<Value>,
}

impl WorkspaceData {
    pub(crate) fn generate(name: &str) -> WorkspaceData {
        let mut rng = SplitMix64(fnv1a(name));
        let slug = slug(name);
        let app_id = app_id_code(name);
        let admin_id = 1_000_000 + rng.below(8_999_999);
        let admin = json!({
            "type": "admin", "id": admin_id.to_string(), "name": format!("{name} Support Admin"),
            "email": format!("support@{slug}.example"), "workspace": name,
        });
        let companies = (0..COMPANIES.len())
            .map(|i| company(&mut rng, name, &slug, i))
            .collect::<Vec<_>>();
        let contacts = (0..10)
            .map(|i| contact(&mut rng, name, &slug, i, &companies[i % companies.len()]))
            .collect::<Vec<_>>();
        let team_id = (4_000_000 + rng.below(999_999)).to_string();
        let conversations = (0..SUBJECTS.len())
            .map(|i| {
                let author = &contacts[(i * 3) % contacts.len()];
                conversation(&mut rng, name, &app_id, i, author, &admin, &team_id)
            })
            .collect();
        WorkspaceData {
            name: name.to_owned(),
            app_id,
            admin,
            conversations,
            contacts,
            companies,
        }
    }

    pub(crate) fn url(&self, kind: crate::fake_intercom::ids::Kind, id: &str) -> String {
        use crate::fake_intercom::ids::Kind;
        let app = &self.app_id;
        match kind {
            Kind::Conversation => {
                format!("https://app.intercom.com/a/inbox/{app}/inbox/conversation/{id}")
            }
            Kind::Contact => {
                format!("https://app.intercom.com/a/apps/{app}/users/{id}/all-conversations")
            }
            Kind::Company => format!("https://app.intercom.com/a/apps/{app}/companies/{id}"),
        }
    }
}

fn company(rng: &mut SplitMix64, ws: &str, slug: &str, i: usize) -> Value {
    let (suffix, industry) = COMPANIES[i];
    let tag_id = (100_000 + rng.below(899_999)).to_string();
    json!({
        "type": "company", "id": rng.hex24(), "company_id": format!("{slug}-{}", suffix.to_lowercase()),
        "name": format!("{ws} {suffix}"), "workspace": ws,
        "website": format!("https://{}.{slug}.example", suffix.to_lowercase()),
        "industry": industry, "size": 10 * (i + 1) * (i + 2), "user_count": 3 + i,
        "monthly_spend": 49 * (i + 1), "session_count": 17 * (i + 1),
        "plan": {"type": "plan", "id": (i + 1).to_string(), "name": (["Starter", "Pro", "Enterprise"][i])},
        "tags": {"type": "tag.list", "tags": [{"type": "tag", "id": tag_id, "name": format!("{ws}-{industry}")}]},
        "segments": {"type": "segment.list", "segments": []},
        "custom_attributes": {"tier": (["bronze", "silver", "gold"][i])},
        "created_at": EPOCH - 86_400 * (300 - i as u64), "updated_at": EPOCH + 3_600 * i as u64,
    })
}

fn contact(rng: &mut SplitMix64, ws: &str, slug: &str, i: usize, company: &Value) -> Value {
    let offset = rng.below(FIRST.len() as u64) as usize;
    let first = FIRST[(i + offset) % FIRST.len()];
    let last = LAST[(i * 7 + offset) % LAST.len()];
    let email = format!(
        "{}.{}@{slug}.example",
        first.to_lowercase(),
        last.to_lowercase()
    );
    json!({
        "type": "contact", "id": rng.hex24(), "workspace_id": app_id_code(ws), "workspace": ws,
        "external_id": format!("{slug}-user-{}", i + 1), "role": if i % 4 == 3 { "lead" } else { "user" },
        "name": format!("{first} {last}"), "email": email, "email_domain": format!("{slug}.example"),
        "phone": format!("+1 555 01{:02}", (i as u64 * 7 + rng.below(10)) % 100),
        "custom_attributes": {
            "plan": (["free", "pro", "enterprise"][i % 3]),
            "shopify_domain": format!("{slug}-shop-{}.myshopify.com", i + 1),
        },
        "companies": {"type": "list", "data": [{"type": "company", "id": company["id"]}]},
        "location": {"type": "location", "country": (["France", "Germany", "United States"][i % 3])},
        "created_at": EPOCH - 86_400 * (200 - i as u64), "updated_at": EPOCH + 600 * i as u64,
        "last_seen_at": EPOCH + 900 * i as u64,
    })
}

fn conversation(
    rng: &mut SplitMix64,
    ws: &str,
    app_id: &str,
    i: usize,
    author: &Value,
    admin: &Value,
    team_id: &str,
) -> Value {
    let id = (100_000_000_000 + rng.below(899_999_999_999)).to_string();
    let state = STATES[i % STATES.len()];
    let created = EPOCH + 7 * 3_600 * i as u64;
    let subject = format!("{} ({ws})", SUBJECTS[i]);
    let body = format!(
        "<p>Hi {ws} support, {}. Could you help? — {}</p>",
        SUBJECTS[i].to_lowercase(),
        author["name"].as_str().unwrap_or_default()
    );
    let assigned = i % 3 != 2;
    let admin_id: Option<u64> = assigned
        .then(|| admin["id"].as_str().and_then(|s| s.parse().ok()))
        .flatten();
    let user = json!({"type": "user", "id": author["id"], "name": author["name"], "email": author["email"]});
    let admin_author =
        json!({"type": "admin", "id": admin["id"], "name": admin["name"], "email": admin["email"]});
    let mut parts = vec![
        part(
            rng,
            "comment",
            &admin_author,
            &format!("<p>Thanks for contacting {ws}! Looking into it.</p>"),
            created + 600,
        ),
        part(
            rng,
            "comment",
            &user,
            "<p>Great, thank you.</p>",
            created + 1_200,
        ),
    ];
    if state == "closed" {
        parts.push(part(
            rng,
            "close",
            &admin_author,
            "<p>Closing this one.</p>",
            created + 5_400,
        ));
    }
    json!({
        "type": "conversation", "id": id, "workspace": ws, "title": subject,
        "created_at": created, "updated_at": created + 5_400, "waiting_since": (state == "open").then_some(created + 1_200),
        "snoozed_until": (state == "snoozed").then_some(created + 86_400),
        "open": state != "closed", "state": state, "read": i.is_multiple_of(2),
        "priority": if i.is_multiple_of(4) { "priority" } else { "not_priority" },
        "admin_assignee_id": admin_id, "team_assignee_id": assigned.then_some(team_id),
        "tags": {"type": "tag.list", "tags": if SUBJECTS[i].contains("Refund") {
            json!([{"type": "tag", "id": "9001", "name": "refund"}]) } else { json!([]) }},
        "source": {
            "type": SOURCES[i % SOURCES.len()], "id": (rng.below(899_999_999) + 100_000_000).to_string(),
            "delivered_as": "customer_initiated", "subject": subject, "body": body, "author": user,
            "attachments": [], "url": null, "redacted": false,
        },
        "contacts": {"type": "contact.list", "contacts": [{"type": "contact", "id": author["id"], "external_id": author["external_id"]}]},
        "teammates": {"type": "admin.list", "teammates": if assigned { json!([{"type": "admin", "id": admin["id"]}]) } else { json!([]) }},
        "statistics": {
            "type": "conversation_statistics",
            "time_to_assignment": assigned.then_some(60 * (i as u64 + 1)),
            "time_to_admin_reply": 600 + 450 * i as u64,
            "time_to_first_close": (state == "closed").then_some(5_400),
            "count_conversation_parts": parts.len(),
        },
        "custom_attributes": {"Workspace": ws, "Channel": SOURCES[i % SOURCES.len()]},
        "app_id": app_id,
        "conversation_parts": {"type": "conversation_part.list", "total_count": parts.len(), "conversation_parts": parts},
    })
}

fn part(rng: &mut SplitMix64, part_type: &str, author: &Value, body: &str, at: u64) -> Value {
    json!({
        "type": "conversation_part", "id": (rng.below(899_999_999) + 100_000_000).to_string(),
        "part_type": part_type, "body": body, "created_at": at, "updated_at": at, "notified_at": at,
        "author": author, "attachments": [], "redacted": false,
    })
}

/// Intercom's `app.id_code` for a workspace: 8 lowercase base-36 characters.
pub(crate) fn app_id_code(name: &str) -> String {
    let mut n = fnv1a(&format!("app:{name}"));
    (0..8)
        .map(|_| {
            let d = (n % 36) as u32;
            n /= 36;
            char::from_digit(d, 36).unwrap_or('0')
        })
        .collect()
}

/// The name as used in host names and email domains.
pub(crate) fn slug(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// FNV-1a: tiny, stable across Rust and crate versions (unlike `DefaultHasher` or `StdRng`).
pub(crate) fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// SplitMix64, for the same reason.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn hex24(&mut self) -> String {
        format!("{:016x}{:08x}", self.next(), self.next() as u32)
    }
}
