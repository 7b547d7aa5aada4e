//! Tenant configuration of callgrid: one YAML file per tenant, checked against the JSON
//! Schema in `schemas/tenant.schema.json` ([`TENANT_SCHEMA_JSON`]) and by rules between
//! fields, loaded into [`TenantFile`].
//!
//! # The format
//!
//! ```yaml
//! tenant: acme                    # id: [a-z0-9][a-z0-9_-]{0,62}
//! name: Acme Hotline
//! timezone: Asia/Ho_Chi_Minh      # IANA name
//! reason_codes: [break, lunch]    # not-ready reasons (A2); `missed_offers` is implied
//! defaults: { wrapup_seconds: 10 } # optional; see `Defaults` for every field
//! agents:
//!   - { id: alice, name: Alice, extension: "10001", skills: { english: 5 } }
//! queues:                         # ids "200".."299" (or 2 + up to 6 digits)
//!   - id: "200"
//!     name: Sales
//!     strategy: longest_idle      # see `Strategy`
//!     members: [{ agent: alice, tier: 1 }]
//!     overflow: { hangup: { cause: closed } }
//! groups:                         # ring-all, ids "1000".."9999"
//!   - { id: "1000", name: Desk, members: [alice] }
//! menus:                          # one-level IVR, ids "100".."199"
//!   - id: "100"
//!     name: Main menu
//!     prompt: welcome
//!     options: { "1": { queue: "200" }, "0": { extension: "10001" } }
//! numbers:
//!   - { number: "+842873001234", name: Main, route: { menu: "100" } }
//!   - number: "+842873001235"     # outbound settings (issue 18), all optional
//!     name: Sales
//!     route: { queue: "200" }
//!     carrier: viettel            # for the caller number on the callee's carrier (N4)
//!     short_code: "1"             # *1*destination forces it (N7)
//!     short_prefix: "801"         # so does 801destination
//!     outbound_groups: ["200"]    # members of these queues / groups only (N2)
//!     trunks: [vt]                # in this order; default every trunk, cheapest first
//! trunks:
//!   - { id: vt, name: Viettel, address: "sip.carrier.example", cost_per_minute: 690 }
//! region: VN                      # how national numbers are read (default VN)
//! outbound: { classes: [internal, national, mobile, toll_free], fallback_number: "+842873001234" }
//! blocklist: ["0987 654 321", "+841900*"]
//! ```
//!
//! Wherever a call goes next there is a [`Target`]: exactly one of `queue`, `extension`,
//! `agent`, `group`, `menu` or `hangup: { cause }`; a menu never leads to another menu.
//! The schema describes every field (types, ranges, defaults, descriptions); editors
//! that speak JSON Schema (e.g. with `# yaml-language-server: $schema=...`) can use it.
//! [`DEMO_TENANT_YAML`] is a complete example.
//!
//! # Loading
//!
//! [`load_file`], [`load_str`] (text from the admin API) and [`load_dir`] parse the YAML,
//! validate it against the schema, deserialize it and check the rules between fields:
//! unique ids and numbers, references to existing agents, queues, groups, menus and
//! extensions, no menu leading to a menu, no queue overflowing to itself, no dialled number
//! reaching two things, and the outbound settings as `callgrid-numbers` reads them (numbers
//! in the tenant's region, carriers, short codes and prefixes told apart, trunks, blocklist
//! entries). They report every problem at once, one line each, as
//! `FILE: FIELD: MESSAGE` (see [`ConfigError`]); they never panic on bad input.
//!
//! # Scale tests
//!
//! [`generate_tenant`] builds large valid tenants; [`to_yaml`] writes any tenant back.

mod check;
mod error;
#[doc(hidden)]
pub mod fuzz;
mod generate;
mod load;
mod model;
mod outbound;
mod schema;
pub mod secrets;
mod setup;

pub use outbound::{backup_routes, BackupRoute};
pub use setup::to_setup;

pub use callgrid_numbers::DestinationClass;
pub use error::{ConfigError, FieldError};
pub use generate::{generate_tenant, to_yaml, MAX_GENERATED_QUEUES};
pub use load::{load_dir, load_file, load_str, load_trusted_str, validate};
pub use model::{
    Agent, CallerId, CallerIdFrom, Cost, Defaults, Group, HostPort, Limits, Member, Menu, Number,
    NumberKind, Outbound, Queue, Register, SipHa1, SipPassword, Strategy, Target, TenantFile,
    Trunk, TrunkTransport, WhenNoAgents, CAUSE_INVALID_INPUT, CAUSE_NO_ANSWER, CAUSE_NO_INPUT,
    CAUSE_QUEUE_TIMEOUT, DEFAULT_KEEPALIVE_SECONDS, DEFAULT_REGION,
    DEFAULT_REGISTER_EXPIRES_SECONDS, DEFAULT_TENANT_MAX_CALLS, DEFAULT_TRUNK_MAX_CALLS,
    REASON_MISSED_OFFERS,
};

/// The JSON Schema of tenant files (`schemas/tenant.schema.json`, draft 2020-12), e.g. for
/// the admin API to hand out.
pub const TENANT_SCHEMA_JSON: &str = include_str!("../../../schemas/tenant.schema.json");

/// The demo tenant (`services/config/demo/demo.yaml`, tenant id `demo`).
pub const DEMO_TENANT_YAML: &str = include_str!("../demo/demo.yaml");
