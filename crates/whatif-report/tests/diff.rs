//! `diff::compare`: unchanged reports flag nothing; real moves are flagged;
//! one-sided items are listed; Holm keeps the family-wise rate.

mod common;

use whatif_report::diff::{self, DiffKey};

#[test]
fn identical_reports_move_nothing() {
    let r = common::report();
    let d = diff::compare(&r, &r, 0.01);
    assert!(!d.moved());
    assert!(d.only_in_a.is_empty() && d.only_in_b.is_empty());
    assert!(d.manifest_changes.is_empty());
    assert!(d.render_text().contains("0 moved"));
}

#[test]
fn a_real_move_is_flagged_and_noise_is_not() {
    let a = common::report();
    let mut b = a.clone();
    // mean_loss in baseline moves by 10 combined SEs; es99 by 1 SE (noise).
    let m = &mut b.worlds[0].metrics[1];
    let se = m.std_error.unwrap();
    m.estimate = Some(m.estimate.unwrap() + 10.0 * se * 2f64.sqrt());
    let m = &mut b.worlds[0].metrics[3];
    m.estimate = Some(m.estimate.unwrap() + m.std_error.unwrap());
    b.manifest.seed = 7;
    let d = diff::compare(&a, &b, 0.01);
    let moved: Vec<String> = d
        .items
        .iter()
        .filter(|i| i.moved)
        .map(|i| i.key.to_string())
        .collect();
    assert_eq!(moved, vec!["mean_loss[baseline]"]);
    let item = d.items.iter().find(|i| i.moved).unwrap();
    assert!((item.z - 10.0).abs() < 1e-9);
    assert!(
        d.manifest_changes
            .iter()
            .any(|c| c.starts_with("seed: 42 → 7"))
    );
    let text = d.render_text();
    assert!(
        text.contains("moved:") && text.contains("mean_loss[baseline]"),
        "{text}"
    );
}

#[test]
fn one_sided_and_missing_items_are_listed() {
    let a = common::report();
    let mut b = a.clone();
    b.effects.pop();
    b.worlds[1].metrics[0].std_error = None;
    b.worlds.push(whatif_report::WorldReport {
        name: "new_world".into(),
        metrics: a.worlds[0].metrics.clone(),
    });
    let d = diff::compare(&a, &b, 0.01);
    assert_eq!(d.only_in_a.len(), 1);
    assert!(matches!(&d.only_in_a[0], DiffKey::Effect { vs, .. } if vs == "recession"));
    assert_eq!(d.only_in_b.len(), 5);
    assert_eq!(d.not_comparable.len(), 1);
    assert!(d.render_text().contains("only in the second report"));
}

#[test]
fn zero_se_changes_count_as_moves() {
    let a = common::report();
    let mut b = a.clone();
    // mean_income effect of raise_limits has SE 0 in both: any change moved.
    let e = b
        .effects
        .iter_mut()
        .find(|e| e.metric == "mean_income" && e.world == "raise_limits")
        .unwrap();
    assert_eq!(e.difference_std_error, Some(0.0));
    e.difference = Some(1.0);
    let d = diff::compare(&a, &b, 0.01);
    assert!(d.moved());
    let i = d.items.iter().find(|i| i.moved).unwrap();
    assert!(i.z.is_infinite() && i.p == 0.0);
}
