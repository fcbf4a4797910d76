//! Adapter probing cost: `--backend auto` may add at most 20 ms to startup
//! where no adapter exists (measured in a fresh process by the CLI tests;
//! here the in-process first probe is timed and reported).

#[test]
fn adapter_probe_is_fast_and_cached() {
    let t = std::time::Instant::now();
    let a = whatif_gpu::adapters();
    let first = t.elapsed();
    let t = std::time::Instant::now();
    let b = whatif_gpu::adapters();
    let second = t.elapsed();
    eprintln!(
        "adapter probe: first {first:?} ({} adapters), cached {second:?}",
        a.len()
    );
    assert_eq!(a, b);
    assert!(second.as_millis() < 5);
}

#[test]
fn auto_pick_is_fast_without_a_gpu_node() {
    let t = std::time::Instant::now();
    let pick = whatif_gpu::auto_pick();
    let took = t.elapsed();
    eprintln!(
        "auto_pick: {:?} in {took:?} (gpu node present: {})",
        pick.as_ref().map(|a| &a.name),
        whatif_gpu::adapter::might_have_real_gpu()
    );
    if !whatif_gpu::adapter::might_have_real_gpu() {
        assert!(pick.is_none());
        assert!(took.as_millis() < 20, "auto_pick took {took:?}");
    }
}
