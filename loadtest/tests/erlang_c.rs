//! The simulator, driving the domain state machines in virtual time, agrees with Erlang C:
//! 10 Erlangs, 180 s mean talk, 20 s threshold, longest idle, 100,000 calls per size.

use callgrid_domain::Strategy;
use callgrid_loadtest::{erlang, sim};

#[test]
fn service_level_within_two_points_of_erlang_c() {
    let expected = [(11, 39.0), (12, 64.0), (13, 79.6), (14, 88.8), (15, 94.2)];
    for (agents, published) in expected {
        let p = sim::SimParams {
            agents,
            erlangs: 10.0,
            mean_talk_s: 180.0,
            sl_threshold_s: 20.0,
            calls: 100_000,
            ring_delay_ms: 0,
            mean_patience_s: None,
            strategy: Strategy::LongestIdle,
            seed: 42 + u64::from(agents),
        };
        let r = sim::run(&p);
        let formula = 100.0 * erlang::service_level(agents, 10.0, 180.0, 20.0);
        println!(
            "N={agents}: simulated {:.1} %, Erlang C {formula:.1} % (published {published} %), offered {}, answered {}",
            r.service_level_pct, r.offered, r.answered
        );
        assert_eq!(r.offered, 100_000);
        assert_eq!(r.answered, r.offered, "no abandonment in this model");
        assert!(
            (r.service_level_pct - published).abs() <= 2.0,
            "N={agents}: simulated {:.2} % vs Erlang C {published} %",
            r.service_level_pct
        );
    }
}
