//! JUnit XML: structure, counts, failure messages with the numbers, escaping.

mod common;

use whatif_report::junit;

#[test]
fn one_testcase_per_check_and_guardrail() {
    let report = common::report();
    let xml = junit::render(&report);
    common::assert_xml(&xml, "JUnit");
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(suite.attribute("tests"), Some("5"));
    assert_eq!(suite.attribute("failures"), Some("2"));
    let cases: Vec<_> = suite
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), 5);
    let failures: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .map(|n| n.attribute("message").unwrap())
        .collect();
    assert_eq!(failures.len(), 2);
    // Check: lhs, rhs and SE.
    assert!(
        failures[0].contains("lhs = 77900")
            && failures[0].contains("rhs = 75000")
            && failures[0].contains("lhs SE = 588"),
        "{}",
        failures[0]
    );
    // Guardrail: violations, share, upper bound and the tolerated share.
    assert!(
        failures[1].contains("violations = 1312")
            && failures[1].contains("share = 0.001312")
            && failures[1].contains("0.0013734")
            && failures[1].contains("max_share = 0.001"),
        "{}",
        failures[1]
    );
    let props: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("property"))
        .collect();
    assert!(
        props
            .iter()
            .any(|p| p.attribute("name") == Some("scenario_sha256"))
    );
}

#[test]
fn escapes_and_faults() {
    let mut report = common::report();
    report.checks[1].name = "a<b & \"c\"\n'd'\u{7}".into();
    report.numeric_faults.push(whatif_report::NumericFault {
        node: "x<y".into(),
        worlds: vec!["w".into()],
        lanes: 2,
        first_sample: 7,
    });
    let xml = junit::render(&report);
    common::assert_xml(&xml, "JUnit with hostile names");
    let doc = roxmltree::Document::parse(&xml).unwrap();
    assert!(
        doc.descendants()
            .any(|n| n.attribute("name") == Some("a<b & \"c\"\n'd'"))
    );
    assert!(
        doc.descendants()
            .filter(|n| n.has_tag_name("failure"))
            .any(|n| n.attribute("type") == Some("NumericFault"))
    );
    // Deterministic.
    assert_eq!(xml, junit::render(&report));
}
