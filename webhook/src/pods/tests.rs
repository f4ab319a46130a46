//! The pod mutation against NADs held in a map, its patch applied back to the
//! pod as the API server applies it (RFC 6902 `add`).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::*;

const RES_A: &str = "intel.com/vfs_a";
const RES_B: &str = "intel.com/vfs_b";

#[derive(Default)]
struct Nads(BTreeMap<(String, String), Value>, std::sync::Mutex<usize>);

impl Nads {
    fn with(mut self, ns: &str, name: &str, resource: Option<&str>) -> Self {
        let mut v = json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                           "metadata": {"name": name, "namespace": ns},
                           "spec": {"config": "{\"cniVersion\":\"1.0.0\",\"type\":\"sriov\"}"}});
        if let Some(r) = resource {
            v["metadata"]["annotations"] = json!({"k8s.v1.cni.cncf.io/resourceName": r});
        }
        self.0.insert((ns.into(), name.into()), v);
        self
    }
}

impl NadSource for Nads {
    async fn get(&self, ns: &str, name: &str) -> Result<Option<Value>, WebhookError> {
        *self.1.lock().unwrap() += 1;
        Ok(self.0.get(&(ns.to_string(), name.to_string())).cloned())
    }
}

fn nads() -> Nads {
    Nads::default()
        .with("t", "a", Some(RES_A))
        .with("t", "b", Some(RES_B))
        .with("other", "a2", Some(RES_A))
        .with("t", "plain", None)
}

fn pod(networks: Option<&str>, containers: Value) -> Value {
    let mut p =
        json!({"metadata": {"name": "p", "annotations": {}}, "spec": {"containers": containers}});
    if let Some(n) = networks {
        p["metadata"]["annotations"][NETWORKS_ANNOTATION] = json!(n);
    }
    p
}

fn one() -> Value {
    json!([{"name": "c0", "image": "x"}])
}

/// RFC 6902 `add`, as the API server applies the webhook's patch.
fn apply(mut doc: Value, ops: &[Value]) -> Value {
    for op in ops {
        assert_eq!(op["op"], "add");
        let path = op["path"].as_str().unwrap();
        let parts: Vec<String> = path[1..]
            .split('/')
            .map(|p| p.replace("~1", "/").replace("~0", "~"))
            .collect();
        let (last, parents) = parts.split_last().unwrap();
        let mut at = &mut doc;
        for p in parents {
            at = match at {
                Value::Array(a) => &mut a[p.parse::<usize>().unwrap()],
                Value::Object(m) => m.get_mut(p).expect("parent exists, as RFC 6902 requires"),
                _ => panic!("{path}"),
            };
        }
        match at {
            Value::Array(a) if last == "-" => a.push(op["value"].clone()),
            _ => {
                at.as_object_mut()
                    .expect("an object")
                    .insert(last.clone(), op["value"].clone());
            }
        }
    }
    doc
}

async fn mutate(p: &Value, n: &Nads) -> Result<Value, WebhookError> {
    let need = needs(p, "t", n).await?;
    Ok(apply(p.clone(), &patch(p, "t", &need)?))
}

fn res(p: &Value, i: usize) -> &Value {
    &p["spec"]["containers"][i]["resources"]
}

#[tokio::test]
async fn both_annotation_forms_give_the_same_requests() {
    let n = nads();
    let short = mutate(&pod(Some("a, b@net2, other/a2"), one()), &n)
        .await
        .unwrap();
    let long = mutate(
        &pod(
            Some(r#"[{"name":"a"},{"name":"b","interface":"net2"},{"name":"a2","namespace":"other"}]"#),
            one(),
        ),
        &n,
    )
    .await
    .unwrap();
    let want = json!({RES_A: "2", RES_B: "1"});
    for p in [&short, &long] {
        assert_eq!(res(p, 0)["requests"], want);
        assert_eq!(res(p, 0)["limits"], want);
    }
}

#[tokio::test]
async fn a_nad_named_twice_counts_twice_and_is_read_once() {
    let n = nads();
    let p = mutate(&pod(Some("a,a,plain"), one()), &n).await.unwrap();
    assert_eq!(res(&p, 0)["requests"], json!({RES_A: "2"}));
    assert_eq!(*n.1.lock().unwrap(), 2, "a and plain, each read once");
}

#[tokio::test]
async fn pods_without_networks_or_devices_are_untouched() {
    let n = nads();
    for p in [
        pod(None, one()),
        pod(Some(""), one()),
        pod(Some("plain"), one()),
    ] {
        let need = needs(&p, "t", &n).await.unwrap();
        assert!(patch(&p, "t", &need).unwrap().is_empty(), "{p}");
    }
    assert_eq!(
        *n.1.lock().unwrap(),
        1,
        "no API read without a networks annotation"
    );
}

#[tokio::test]
async fn never_lowers_what_the_user_wrote_and_raises_what_is_short() {
    let n = nads();
    let c = json!([{"name": "c0", "resources": {
        "requests": {RES_A: "5", "cpu": "100m"},
        "limits": {RES_A: "5", RES_B: "1", "memory": "1Gi"}}}]);
    let p = mutate(&pod(Some("a,b,b"), c), &n).await.unwrap();
    assert_eq!(
        res(&p, 0)["requests"],
        json!({RES_A: "5", "cpu": "100m", RES_B: "2"})
    );
    assert_eq!(
        res(&p, 0)["limits"],
        json!({RES_A: "5", RES_B: "2", "memory": "1Gi"})
    );
    // Already enough (another spelling of the same count): no patch at all.
    let c =
        json!([{"name": "c0", "resources": {"requests": {RES_A: "2000m"}, "limits": {RES_A: 2}}}]);
    let p = pod(Some("a,a"), c);
    assert!(patch(&p, "t", &needs(&p, "t", &n).await.unwrap())
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn requests_only_or_limits_only_get_the_other_half() {
    let n = nads();
    let c = json!([{"name": "c0", "resources": {"requests": {"cpu": "1"}}}]);
    let p = mutate(&pod(Some("a"), c), &n).await.unwrap();
    assert_eq!(res(&p, 0)["requests"], json!({"cpu": "1", RES_A: "1"}));
    assert_eq!(res(&p, 0)["limits"], json!({RES_A: "1"}));
}

#[tokio::test]
async fn the_named_container_takes_the_requests() {
    let n = nads();
    let cs = json!([{"name": "side"}, {"name": "main"}]);
    let mut p = pod(Some("a"), cs);
    p["metadata"]["annotations"][RESOURCE_CONTAINER_ANNOTATION] = json!("main");
    let out = mutate(&p, &n).await.unwrap();
    assert_eq!(res(&out, 1)["requests"], json!({RES_A: "1"}));
    assert!(res(&out, 0).is_null(), "the first container untouched");
    p["metadata"]["annotations"][RESOURCE_CONTAINER_ANNOTATION] = json!("nope");
    let e = mutate(&p, &n).await.unwrap_err();
    assert!(e.to_string().contains("\"nope\""), "{e}");
}

#[tokio::test]
async fn refusals_name_their_subject() {
    let n = nads();
    let e = mutate(&pod(Some("missing"), one()), &n).await.unwrap_err();
    assert!(e.to_string().contains("t/missing"), "{e}");
    let e = mutate(&pod(Some("[{\"name\": 1}]"), one()), &n)
        .await
        .unwrap_err();
    assert!(e.to_string().contains(NETWORKS_ANNOTATION), "{e}");
    let e = mutate(&pod(Some("a"), json!([])), &n).await.unwrap_err();
    assert!(e.to_string().contains("no container"), "{e}");
    let c = json!([{"name": "c0", "resources": {"limits": {RES_A: "1.5"}}}]);
    let e = mutate(&pod(Some("a"), c), &n).await.unwrap_err();
    assert!(e.to_string().contains("limits[intel.com/vfs_a]"), "{e}");
}

#[tokio::test]
async fn podnetinfo_mounts_labels_and_annotations_once() {
    let c = json!([{"name": "c0", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]);
    let mut p = pod(Some("a"), c);
    p["spec"]["volumes"] = json!([{"name": "data", "emptyDir": {}}]);
    let ops = podnetinfo(&p, "t").unwrap();
    let out = apply(p.clone(), &ops);
    assert_eq!(out["spec"]["volumes"][1]["name"], PODNETINFO_VOLUME);
    assert_eq!(
        out["spec"]["volumes"][1]["downwardAPI"]["items"][1]["fieldRef"]["fieldPath"],
        "metadata.annotations"
    );
    assert_eq!(
        out["spec"]["containers"][0]["volumeMounts"][1]["mountPath"],
        PODNETINFO_PATH
    );
    assert!(podnetinfo(&out, "t").unwrap().is_empty(), "never twice");
    // A pod with neither volumes nor mounts gets both lists.
    let p = pod(Some("a"), one());
    let out = apply(p.clone(), &podnetinfo(&p, "t").unwrap());
    assert_eq!(out["spec"]["volumes"][0]["name"], PODNETINFO_VOLUME);
    assert_eq!(
        out["spec"]["containers"][0]["volumeMounts"][0]["readOnly"],
        true
    );
}

#[tokio::test]
async fn podnetinfo_only_when_asked_and_devices_are_needed() {
    let n = nads();
    let review = |nets: &str| -> crate::review::AdmissionRequest {
        serde_json::from_value(
            json!({"uid": "u", "kind": {"kind": "Pod"}, "namespace": "t",
            "operation": "CREATE", "object": pod(Some(nets), one())}),
        )
        .unwrap()
    };
    let volumes = |v: crate::review::Verdict| match v {
        crate::review::Verdict::Allow { patch, .. } => patch
            .iter()
            .filter(|op| {
                op["path"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("/spec/volumes"))
            })
            .count(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        volumes(crate::admit::mutate_pod(&review("a"), &n, true).await),
        1
    );
    assert_eq!(
        volumes(crate::admit::mutate_pod(&review("a"), &n, false).await),
        0
    );
    assert_eq!(
        volumes(crate::admit::mutate_pod(&review("plain"), &n, true).await),
        0
    );
}

mod properties {
    //! For any requests and limits a user wrote (in any spelling of a whole
    //! count) and any networks, the patched pod asks for exactly the most of
    //! the three, in both halves: never less than the user wrote, never less
    //! than the networks need.
    use super::*;
    use proptest::prelude::*;

    fn spell(n: u64, how: u8) -> Value {
        match how % 4 {
            0 => json!(n.to_string()),
            1 => json!(format!("{}m", n * 1000)),
            2 => json!(n),
            _ => json!(format!("{n}.0")),
        }
    }

    proptest! {
        #[test]
        fn never_lowers_and_always_covers(
            req in proptest::option::of((0u64..6, any::<u8>())),
            lim in proptest::option::of((0u64..6, any::<u8>())),
            a in 0usize..4,
            b in 0usize..3,
        ) {
            let mut resources = serde_json::Map::new();
            if let Some((n, how)) = req {
                resources.insert("requests".into(), json!({RES_A: spell(n, how)}));
            }
            if let Some((n, how)) = lim {
                resources.insert("limits".into(), json!({RES_A: spell(n, how)}));
            }
            let c = json!([{"name": "c0", "resources": resources}]);
            let nets: Vec<&str> = std::iter::repeat_n("a", a).chain(std::iter::repeat_n("b", b)).collect();
            let p = pod((!nets.is_empty()).then(|| nets.join(",")).as_deref(), c);
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let out = rt.block_on(mutate(&p, &nads())).unwrap();
            let want_a = [req.map(|r| r.0), lim.map(|l| l.0), Some(a as u64)].into_iter().flatten().max().unwrap_or(0);
            let r = res(&out, 0);
            let got = |field: &str, res: &str| r[field].get(res).map(|v| {
                let t = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                crate::quantity::whole(&t).unwrap()
            });
            if a > 0 {
                // Needed: both halves raised to the most of the three.
                prop_assert_eq!(got("requests", RES_A), Some(want_a));
                prop_assert_eq!(got("limits", RES_A), Some(want_a));
            } else {
                // Not needed: exactly what the user wrote.
                prop_assert_eq!(got("requests", RES_A), req.map(|r| r.0));
                prop_assert_eq!(got("limits", RES_A), lim.map(|l| l.0));
            }
            if b > 0 {
                prop_assert_eq!(got("requests", RES_B), Some(b as u64));
                prop_assert_eq!(got("limits", RES_B), Some(b as u64));
            } else {
                prop_assert_eq!(got("requests", RES_B), None);
            }
        }
    }
}
