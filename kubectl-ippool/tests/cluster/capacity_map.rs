//! `capacity -o html` on Calico's guide scenario, rendered by headless Chromium: the page's map
//! holds a cell for each block calicoctl lists, coloured by the node each is affine to, and the
//! blocks a projected growth would claim. A screenshot is kept in `test-artifacts/`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::migration::*;
use harness::SimOptions;
use harness::workloads::{IPIP_TUNNEL_ANNOTATION, wait_tunnel_addresses};
use ipnet::IpNet;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use serde_json::json;

/// Debian's Chromium unless CHROMIUM_BIN names another (as the playground's tests do).
fn chromium() -> String {
    std::env::var("CHROMIUM_BIN").unwrap_or_else(|_| "/usr/bin/chromium".to_owned())
}

/// Chromium run headless on a fresh profile with `args`; its stdout.
fn run_chromium(args: &[String]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{} could not be run: {e}", chromium()));
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The values of `attribute` on the elements whose markup starts with `opening`.
fn attribute_values(dom: &str, opening: &str, attribute: &str) -> Vec<String> {
    dom.match_indices(opening)
        .filter_map(|(at, _)| {
            let tag = &dom[at..at + dom[at..].find('>')?];
            let value = tag.split(&format!(" {attribute}=\"")).nth(1)?;
            Some(value[..value.find('"')?].to_owned())
        })
        .collect()
}

fn artifacts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("test-artifacts")
}

#[tokio::test]
async fn the_map_of_the_guide_scenario_renders_in_chromium() {
    let c = start(4, 0).await;
    create_default_pool(&c.client).await;
    let rolling =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}});
    create::<Deployment>(
        &c.client,
        deployment("kube-system", "coredns", 2, rolling.clone()),
    )
    .await;
    create::<Deployment>(&c.client, deployment("default", "web", 3, rolling)).await;
    create::<DaemonSet>(
        &c.client,
        daemon_set("default", "node-agent", json!({"type": "RollingUpdate"})),
    )
    .await;
    wait_pods(&c.client, &[("coredns", 2), ("web", 3), ("node-agent", 4)]).await;
    // The nodes' tunnel addresses come on their own time: wait for them, so the blocks hold still.
    let pool: IpNet = "192.168.0.0/16".parse().unwrap();
    let nodes = SimOptions {
        nodes: 4,
        ..SimOptions::default()
    }
    .node_names();
    wait_tunnel_addresses(
        &c.client,
        &nodes,
        IPIP_TUNNEL_ANNOTATION,
        "tunnel addresses in the pool",
        |a| a.is_some_and(|a| pool.contains(&a)),
    )
    .await;

    let out = c
        .ippool(&["capacity", "-o", "html", "--nodes", "10"], &[])
        .await;
    assert!(out.status.success(), "{}", text(&out));
    std::fs::create_dir_all(artifacts()).unwrap();
    let page = artifacts().join("capacity-map.html");
    std::fs::write(&page, &out.stdout).unwrap();
    let url = format!("file://{}", page.display());

    let dom = run_chromium(&["--dump-dom".to_owned(), url.clone()]);
    assert!(
        dom.contains("<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"address-map\""),
        "{dom}"
    );
    let pools = attribute_values(&dom, "<g class=\"pool", "data-pool");
    assert_eq!(pools, ["default-ipv4-ippool"]);
    // The strips: kubeadm's podSubnet, and the pool's own span (it lies outside podSubnet).
    let spaces = attribute_values(&dom, "<g class=\"space\"", "data-cidr");
    assert_eq!(spaces, ["10.0.0.0/8", "192.168.0.0/16"]);

    let drawn: BTreeSet<IpNet> = attribute_values(&dom, "<g class=\"cell block", "data-cidr")
        .iter()
        .map(|c| c.parse().unwrap())
        .collect();
    let listed: BTreeSet<IpNet> = c.cp.ipam_show().unwrap().blocks.into_keys().collect();
    assert_eq!(
        drawn, listed,
        "the map's blocks against calicoctl ipam show"
    );
    let owners: BTreeSet<String> = attribute_values(&dom, "<g class=\"cell block", "data-node")
        .into_iter()
        .collect();
    assert_eq!(
        owners.len(),
        4,
        "each of the 4 nodes holds a block: {owners:?}"
    );
    assert_eq!(dom.matches("<g class=\"legend node\">").count(), 4);
    // Ten more nodes each claim a block at least: hatched cells, and the page says it fits.
    assert!(dom.matches("class=\"cell free projected\"").count() >= 10);
    assert!(dom.contains("<span class=\"fits\">fits</span>"), "{dom}");

    let shot = artifacts().join("capacity-map.png");
    let _ = std::fs::remove_file(&shot);
    run_chromium(&[
        format!("--screenshot={}", shot.display()),
        "--window-size=1100,1400".to_owned(),
        url,
    ]);
    let png = std::fs::read(&shot).expect("the screenshot is written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    assert_eq!(width, 1100);
}
