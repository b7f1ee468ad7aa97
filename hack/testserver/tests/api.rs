//! CRUD, errors, selectors, pagination, status subresource, patches and
//! finalizers, all through kube-rs against an in-process server.

mod common;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube_testserver::TestServer;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread")]
async fn crud_and_resource_versions() {
    let srv = TestServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(srv.client().await, "default");
    let c = api.create(&PostParams::default(), &cm("a")).await.unwrap();
    let rv1: u64 = c
        .metadata
        .resource_version
        .clone()
        .unwrap()
        .parse()
        .unwrap();
    assert!(c.metadata.uid.is_some() && c.metadata.creation_timestamp.is_some());
    assert_eq!(c.metadata.generation, Some(1));
    let mut g = api.get("a").await.unwrap();
    g.data.as_mut().unwrap().insert("k".into(), "w".into());
    let u = api.replace("a", &PostParams::default(), &g).await.unwrap();
    let rv2: u64 = u
        .metadata
        .resource_version
        .clone()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv2 > rv1);
    // stale update -> 409 Conflict with the real message
    let s = status(
        api.replace("a", &PostParams::default(), &g)
            .await
            .unwrap_err(),
    );
    assert_eq!(s.code, 409);
    assert_eq!(s.reason, "Conflict");
    assert_eq!(s.message, "Operation cannot be fulfilled on configmaps \"a\": the object has been modified; please apply your changes to the latest version and try again");
    // unconditional update (no resourceVersion)
    let mut g2 = g.clone();
    g2.metadata.resource_version = None;
    api.replace("a", &PostParams::default(), &g2).await.unwrap();
    // generateName
    let mut gen = cm("");
    gen.metadata.name = None;
    gen.metadata.generate_name = Some("gen-".into());
    let made = api.create(&PostParams::default(), &gen).await.unwrap();
    assert!(made.metadata.name.unwrap().starts_with("gen-"));
    // delete returns the object; then NotFound
    api.delete("a", &DeleteParams::default()).await.unwrap();
    let s = status(api.get("a").await.unwrap_err());
    assert_eq!((s.code, s.reason.as_str()), (404, "NotFound"));
}

#[tokio::test(flavor = "multi_thread")]
async fn error_bodies_match_kube_apiserver() {
    let srv = TestServer::start().await.unwrap();
    let (code, _, body) = raw(
        srv.addr(),
        "GET",
        "/api/v1/namespaces/default/persistentvolumeclaims/foo",
        None,
    )
    .await;
    assert_eq!(code, 404);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v,
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
        "message":"persistentvolumeclaims \"foo\" not found","reason":"NotFound",
        "details":{"name":"foo","kind":"persistentvolumeclaims"},"code":404})
    );

    let sc = r#"{"apiVersion":"storage.k8s.io/v1","kind":"StorageClass","metadata":{"name":"x"},"provisioner":"p"}"#;
    assert_eq!(
        raw(
            srv.addr(),
            "POST",
            "/apis/storage.k8s.io/v1/storageclasses",
            Some(("application/json", sc))
        )
        .await
        .0,
        201
    );
    let (code, _, body) = raw(
        srv.addr(),
        "POST",
        "/apis/storage.k8s.io/v1/storageclasses",
        Some(("application/json", sc)),
    )
    .await;
    assert_eq!(code, 409);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["message"],
        "storageclasses.storage.k8s.io \"x\" already exists"
    );
    assert_eq!(v["reason"], "AlreadyExists");
    assert_eq!(
        v["details"],
        json!({"name":"x","group":"storage.k8s.io","kind":"storageclasses"})
    );

    let api: Api<ConfigMap> = Api::namespaced(srv.client().await, "default");
    let s = status(
        api.create(&PostParams::default(), &cm("Bad_Name"))
            .await
            .unwrap_err(),
    );
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
    assert!(
        s.message.starts_with(
            "ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\""
        ),
        "{}",
        s.message
    );
    let missing: Api<ConfigMap> = Api::namespaced(srv.client().await, "nope");
    let s = status(
        missing
            .create(&PostParams::default(), &cm("a"))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (s.code, s.message.as_str()),
        (404, "namespaces \"nope\" not found")
    );
    let (code, _, body) = raw(
        srv.addr(),
        "PUT",
        "/api/v1/namespaces/default/configmaps",
        Some(("application/json", "{}")),
    )
    .await;
    assert_eq!(code, 405, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn selectors_and_pagination() {
    let srv = TestServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(srv.client().await, "default");
    for i in 0..25 {
        let mut c = cm(&format!("cm-{i:02}"));
        c.metadata.labels = Some(
            [
                ("idx".to_string(), (i % 3).to_string()),
                ("app".to_string(), "x".to_string()),
            ]
            .into(),
        );
        if i == 0 {
            c.metadata
                .labels
                .as_mut()
                .unwrap()
                .insert("special".into(), "yes".into());
        }
        api.create(&PostParams::default(), &c).await.unwrap();
    }
    let count = |sel: &'static str| {
        let api = api.clone();
        async move {
            api.list(&ListParams::default().labels(sel))
                .await
                .unwrap()
                .items
                .len()
        }
    };
    assert_eq!(count("idx=0").await, 9);
    assert_eq!(count("idx==1").await, 8);
    assert_eq!(count("idx!=0").await, 16);
    assert_eq!(count("idx in (0,1)").await, 17);
    assert_eq!(count("idx notin (0,1)").await, 8);
    assert_eq!(count("special").await, 1);
    assert_eq!(count("!special").await, 24);
    assert_eq!(count("app=x,idx=2").await, 8);
    let by_name = api
        .list(&ListParams::default().fields("metadata.name=cm-03"))
        .await
        .unwrap();
    assert_eq!(by_name.items.len(), 1);
    let by_ns = api
        .list(&ListParams::default().fields("metadata.namespace=default"))
        .await
        .unwrap();
    assert_eq!(by_ns.items.len(), 25);

    let mut names = Vec::new();
    let mut lp = ListParams::default().limit(10);
    let mut pages = 0;
    loop {
        let page = api.list(&lp).await.unwrap();
        pages += 1;
        names.extend(page.items.iter().map(|c| c.metadata.name.clone().unwrap()));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names.len(), 25);
    assert!(names.windows(2).all(|w| w[0] < w[1]));
}

/// Pages of one list show the store as of the first page, as etcd's MVCC
/// does; a watch from the list's resourceVersion then brings every change
/// since, also of objects on pages read before the change. A page served
/// from the current state instead (as this server did) let a watch skip
/// the change of an object on page 1: a Released PV was never deleted.
#[tokio::test(flavor = "multi_thread")]
async fn every_page_of_a_list_shows_its_first_pages_version() {
    let srv = TestServer::start_with(without_controllers()).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(srv.client().await, "default");
    create_cms(&api, (0..25).map(|i| format!("cm-{i:02}"))).await;
    let page1 = api.list(&ListParams::default().limit(10)).await.unwrap();
    let rv = page1.metadata.resource_version.clone().unwrap();
    let token = page1.metadata.continue_.clone().unwrap();
    // Between the pages: one change on page 1, three on page 2.
    let mut changed = api.get("cm-01").await.unwrap();
    changed.data = Some([("k".to_string(), "changed".to_string())].into());
    api.replace("cm-01", &PostParams::default(), &changed)
        .await
        .unwrap();
    api.delete("cm-15", &DeleteParams::default()).await.unwrap();
    api.create(&PostParams::default(), &cm("cm-12a"))
        .await
        .unwrap();
    let mut cm12 = api.get("cm-12").await.unwrap();
    cm12.data = Some([("k".to_string(), "changed".to_string())].into());
    api.replace("cm-12", &PostParams::default(), &cm12)
        .await
        .unwrap();

    let page2 = api
        .list(&ListParams::default().limit(10).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(
        page2.metadata.resource_version.as_deref(),
        Some(rv.as_str())
    );
    let names: Vec<_> = page2
        .items
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    let want: Vec<_> = (10..20).map(|i| format!("cm-{i:02}")).collect();
    assert_eq!(
        names, want,
        "cm-15 deleted and cm-12a created after the list began"
    );
    let cm12_then = &page2.items[2];
    assert_eq!(
        cm12_then.data.as_ref().unwrap()["k"],
        "v",
        "page 2 shows cm-12 before its change"
    );

    // The watch from the list's version brings all four changes.
    use futures::StreamExt;
    use kube::api::{WatchEvent, WatchParams};
    let mut w = api
        .watch(&WatchParams::default().timeout(5), &rv)
        .await
        .unwrap()
        .boxed();
    let mut seen = Vec::new();
    while seen.len() < 4 {
        match w.next().await.expect("watch ended early").unwrap() {
            WatchEvent::Added(c) => seen.push(format!("ADDED {}", c.metadata.name.unwrap())),
            WatchEvent::Modified(c) => seen.push(format!("MODIFIED {}", c.metadata.name.unwrap())),
            WatchEvent::Deleted(c) => seen.push(format!("DELETED {}", c.metadata.name.unwrap())),
            _ => {}
        }
    }
    assert_eq!(
        seen,
        [
            "MODIFIED cm-01",
            "DELETED cm-15",
            "ADDED cm-12a",
            "MODIFIED cm-12"
        ]
    );
}

/// A continue token older than the change history is refused with 410, as
/// after etcd's compaction; the client lists again from the start.
#[tokio::test(flavor = "multi_thread")]
async fn a_continue_token_older_than_the_history_expires() {
    let srv = TestServer::start_with(kube_testserver::Config {
        watch_history: 3,
        ..without_controllers()
    })
    .await
    .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(srv.client().await, "default");
    create_cms(&api, (0..5).map(|i| format!("cm-{i}"))).await;
    let page1 = api.list(&ListParams::default().limit(2)).await.unwrap();
    let token = page1.metadata.continue_.clone().unwrap();
    // No change yet: the token still works.
    let page2 = api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(page2.items.len(), 2);
    create_cms(&api, (5..9).map(|i| format!("cm-{i}"))).await;
    let s = status(
        api.list(&ListParams::default().limit(2).continue_token(&token))
            .await
            .unwrap_err(),
    );
    assert_eq!((s.code, s.reason.as_str()), (410, "Expired"));
}

#[tokio::test(flavor = "multi_thread")]
async fn pod_field_selector_node_name() {
    let srv = TestServer::start_with(kube_testserver::Config {
        scheduler: false,
        ..Default::default()
    })
    .await
    .unwrap();
    let api: Api<Pod> = Api::namespaced(srv.client().await, "default");
    for (n, node) in [("p1", "a"), ("p2", "b"), ("p3", "a")] {
        let p: Pod = serde_json::from_value(json!({"metadata": {"name": n}, "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]}})).unwrap();
        api.create(&PostParams::default(), &p).await.unwrap();
    }
    let l = api
        .list(&ListParams::default().fields("spec.nodeName=a"))
        .await
        .unwrap();
    assert_eq!(l.items.len(), 2);
    let all: Api<Pod> = Api::all(srv.client().await);
    assert_eq!(
        all.list(&ListParams::default().fields("spec.nodeName!=a"))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn status_subresource() {
    let srv = TestServer::start_with(kube_testserver::Config {
        binder: false,
        ..Default::default()
    })
    .await
    .unwrap();
    let api: Api<PersistentVolumeClaim> = Api::namespaced(srv.client().await, "default");
    let c = api
        .create(&PostParams::default(), &pvc("c", Some("x"), "1Gi"))
        .await
        .unwrap();
    assert_eq!(c.status.unwrap().phase.as_deref(), Some("Pending"));
    // main-resource patch ignores status
    let p = api
        .patch(
            "c",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"phase": "Bound"}, "metadata": {"labels": {"a": "b"}}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(p.status.unwrap().phase.as_deref(), Some("Pending"));
    assert_eq!(p.metadata.labels.unwrap()["a"], "b");
    // status patch changes only status
    let s = api
        .patch_status(
            "c",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"phase": "Bound"}, "metadata": {"labels": {"a": "c"}}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(s.status.clone().unwrap().phase.as_deref(), Some("Bound"));
    assert_eq!(s.metadata.labels.clone().unwrap()["a"], "b");
    // PUT status
    let mut s2 = s.clone();
    s2.status.as_mut().unwrap().phase = Some("Lost".into());
    s2.spec.as_mut().unwrap().volume_name = Some("ignored".into());
    let r = api
        .replace_status("c", &PostParams::default(), &s2)
        .await
        .unwrap();
    assert_eq!(r.status.unwrap().phase.as_deref(), Some("Lost"));
    assert_eq!(r.spec.unwrap().volume_name, None);
    let g = api.get_status("c").await.unwrap();
    assert_eq!(g.status.unwrap().phase.as_deref(), Some("Lost"));
    // spec change bumps generation, status change does not
    assert_eq!(g.metadata.generation, Some(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn patch_flavours() {
    let srv = TestServer::start().await.unwrap();
    let client = srv.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &cm("p")).await.unwrap();
    let r = api
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": null, "n": "1"}})),
        )
        .await
        .unwrap();
    assert_eq!(r.data.unwrap(), [("n".to_string(), "1".to_string())].into());
    let jp: json_patch::Patch = serde_json::from_value(json!([{"op": "add", "path": "/data/m", "value": "2"}, {"op": "test", "path": "/data/n", "value": "1"}])).unwrap();
    let r = api
        .patch("p", &PatchParams::default(), &Patch::<()>::Json(jp))
        .await
        .unwrap();
    assert_eq!(r.data.unwrap().len(), 2);
    let bad: json_patch::Patch =
        serde_json::from_value(json!([{"op": "test", "path": "/data/n", "value": "nope"}]))
            .unwrap();
    assert_eq!(
        status(
            api.patch("p", &PatchParams::default(), &Patch::<()>::Json(bad))
                .await
                .unwrap_err()
        )
        .code,
        422
    );
    // stale resourceVersion in a merge patch -> conflict
    let s = status(
        api.patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"resourceVersion": "1"}, "data": {"x": "y"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(s.code, 409);

    // strategic merge: finalizers as a set, containers by name
    let dapi: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let d: Deployment = serde_json::from_value(json!({"metadata": {"name": "d", "finalizers": ["a/x"]}, "spec": {"selector": {"matchLabels": {"a": "b"}},
        "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c1", "image": "i1"}, {"name": "c2", "image": "i2"}]}}}})).unwrap();
    dapi.create(&PostParams::default(), &d).await.unwrap();
    let r = dapi.patch("d", &PatchParams::default(), &Patch::Strategic(json!({"metadata": {"finalizers": ["b/y"]},
        "spec": {"template": {"spec": {"containers": [{"name": "c2", "image": "i2b"}, {"name": "c1", "$patch": "delete"}]}}}}))).await.unwrap();
    assert_eq!(
        r.metadata.finalizers.clone().unwrap(),
        vec!["a/x".to_string(), "b/y".to_string()]
    );
    let cs = r.spec.unwrap().template.spec.unwrap().containers;
    assert_eq!(cs.len(), 1);
    assert_eq!(cs[0].image.as_deref(), Some("i2b"));
    assert_eq!(r.metadata.generation, Some(2));
    let r = dapi
        .patch(
            "d",
            &PatchParams::default(),
            &Patch::Strategic(
                json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a/x"]}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(r.metadata.finalizers.unwrap(), vec!["b/y".to_string()]);

    // server-side apply: create, then merge over existing, managedFields recorded
    let applied = api
        .patch(
            "ssa",
            &PatchParams::apply("tester"),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "ssa", "labels": {"l": "1"}}, "data": {"a": "1"}})),
        )
        .await
        .unwrap();
    assert_eq!(applied.data.unwrap()["a"], "1");
    let mf = applied.metadata.managed_fields.unwrap();
    assert_eq!(mf[0].manager.as_deref(), Some("tester"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));
    let again = api
        .patch(
            "ssa",
            &PatchParams::apply("tester").force(),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "ssa"}, "data": {"b": "2"}})),
        )
        .await
        .unwrap();
    // fields the manager stopped applying (and nobody else owns) are removed
    assert_eq!(
        again.data.unwrap(),
        [("b".to_string(), "2".to_string())].into()
    );
    assert!(again.metadata.labels.is_none());
    // another manager changing an owned field conflicts unless forced
    let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"b": "3"}});
    let s = status(
        api.patch(
            "ssa",
            &PatchParams::apply("other"),
            &Patch::Apply(other.clone()),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(s.code, 409);
    assert_eq!(s.reason, "Conflict");
    assert_eq!(
        s.message,
        "Apply failed with 1 conflict: conflict with \"tester\" using v1: .data.b"
    );
    // same value: shared ownership, no conflict
    let same = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"b": "2"}});
    api.patch("ssa", &PatchParams::apply("other"), &Patch::Apply(same))
        .await
        .unwrap();
    let forced = api
        .patch(
            "ssa",
            &PatchParams::apply("other").force(),
            &Patch::Apply(other),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.unwrap()["b"], "3");
    // an ordinary merge patch takes ownership for its manager
    let pp = PatchParams {
        field_manager: Some("patcher".into()),
        ..Default::default()
    };
    let p = api
        .patch("ssa", &pp, &Patch::Merge(json!({"data": {"c": "4"}})))
        .await
        .unwrap();
    let mf = p.metadata.managed_fields.unwrap();
    assert!(mf.iter().any(
        |e| e.manager.as_deref() == Some("patcher") && e.operation.as_deref() == Some("Update")
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn finalizers_and_delete_preconditions() {
    let srv = TestServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(srv.client().await, "default");
    let mut c = cm("f");
    c.metadata.finalizers = Some(vec!["example.com/keep".into()]);
    let created = api.create(&PostParams::default(), &c).await.unwrap();
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some("wrong".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    let s = status(api.delete("f", &dp).await.unwrap_err());
    assert_eq!(s.code, 409);
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: created.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    let r = api.delete("f", &dp).await.unwrap();
    let obj = r.left().expect("object returned");
    assert!(obj.metadata.deletion_timestamp.is_some());
    assert_eq!(obj.metadata.deletion_grace_period_seconds, Some(0));
    let still = api.get("f").await.unwrap();
    assert!(still.metadata.deletion_timestamp.is_some());
    api.patch(
        "f",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert_eq!(status(api.get("f").await.unwrap_err()).code, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn namespaces_and_discovery() {
    let srv = TestServer::start().await.unwrap();
    let client = srv.client().await;
    let ns: Api<Namespace> = Api::all(client.clone());
    let names: Vec<String> = ns
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert!(names.contains(&"default".to_string()) && names.contains(&"kube-system".to_string()));
    let v = client.apiserver_version().await.unwrap();
    assert_eq!(v.git_version, "v1.33.0");
    let d = kube::discovery::Discovery::new(client.clone())
        .run()
        .await
        .unwrap();
    assert!(d.has_group("storage.k8s.io"));
    let (ar, caps) = kube::discovery::pinned_kind(
        &client,
        &kube::api::GroupVersionKind::gvk("", "v1", "PersistentVolumeClaim"),
    )
    .await
    .unwrap();
    assert_eq!(ar.plural, "persistentvolumeclaims");
    assert!(
        caps.subresources.iter().any(|(s, _)| s.plural == "status")
            || !caps.subresources.is_empty()
            || caps.scope == kube::discovery::Scope::Namespaced
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn events_share_storage_across_api_versions() {
    use k8s_openapi::api::core::v1::{Event as CoreEvent, ObjectReference};
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let srv = TestServer::start().await.unwrap();
    let client = srv.client().await;
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let claim = pvcs
        .create(&PostParams::default(), &pvc("ev-claim", Some("x"), "1Gi"))
        .await
        .unwrap();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "test-provisioner".into(),
            instance: Some("i1".into()),
        },
    );
    let reference = ObjectReference {
        kind: Some("PersistentVolumeClaim".into()),
        api_version: Some("v1".into()),
        namespace: Some("default".into()),
        name: Some("ev-claim".into()),
        uid: claim.metadata.uid.clone(),
        ..Default::default()
    };
    let ev = Event {
        type_: EventType::Normal,
        reason: "Provisioning".into(),
        note: Some("External provisioner is provisioning volume".into()),
        action: "Provision".into(),
        secondary: None,
    };
    recorder.publish(&ev, &reference).await.unwrap();
    recorder.publish(&ev, &reference).await.unwrap(); // series update via merge patch
    let core: Api<CoreEvent> = Api::namespaced(client.clone(), "default");
    let list = core
        .list(&ListParams::default().fields("involvedObject.name=ev-claim"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    let e = &list.items[0];
    assert_eq!(e.reason.as_deref(), Some("Provisioning"));
    assert_eq!(
        e.message.as_deref(),
        Some("External provisioner is provisioning volume")
    );
    assert_eq!(e.reporting_component.as_deref(), Some("test-provisioner"));
    assert_eq!(e.series.as_ref().and_then(|s| s.count), Some(2));
    let v1: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client, "default");
    let l = v1
        .list(&ListParams::default().fields("regarding.name=ev-claim"))
        .await
        .unwrap();
    assert_eq!(
        l.items[0].note.as_deref(),
        Some("External provisioner is provisioning volume")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_does_not_persist() {
    let srv = TestServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(srv.client().await, "default");
    let rv0 = srv.store().current_rv();
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let c = api.create(&dry, &cm("dry")).await.unwrap();
    assert_eq!(c.metadata.name.as_deref(), Some("dry"));
    assert_eq!(status(api.get("dry").await.unwrap_err()).code, 404);
    assert_eq!(srv.store().current_rv(), rv0);
    api.create(&PostParams::default(), &cm("wet"))
        .await
        .unwrap();
    let pp = PatchParams {
        dry_run: true,
        ..Default::default()
    };
    let p = api
        .patch("wet", &pp, &Patch::Merge(json!({"data": {"k": "changed"}})))
        .await
        .unwrap();
    assert_eq!(p.data.unwrap()["k"], "changed");
    assert_eq!(api.get("wet").await.unwrap().data.unwrap()["k"], "v");
}

#[tokio::test(flavor = "multi_thread")]
async fn api_defaults_are_applied() {
    use k8s_openapi::api::core::v1::PersistentVolume;
    use k8s_openapi::api::storage::v1::StorageClass;
    let srv = TestServer::start().await.unwrap();
    let client = srv.client().await;
    let sc: StorageClass =
        serde_json::from_value(json!({"metadata": {"name": "s"}, "provisioner": "p"})).unwrap();
    let sc = Api::<StorageClass>::all(client.clone())
        .create(&PostParams::default(), &sc)
        .await
        .unwrap();
    assert_eq!(sc.reclaim_policy.as_deref(), Some("Delete"));
    assert_eq!(sc.volume_binding_mode.as_deref(), Some("Immediate"));
    let pv = Api::<PersistentVolume>::all(client.clone())
        .create(&PostParams::default(), &pv("d", "s", "1Gi"))
        .await
        .unwrap();
    let spec = pv.spec.unwrap();
    assert_eq!(
        spec.persistent_volume_reclaim_policy.as_deref(),
        Some("Retain")
    );
    assert_eq!(spec.volume_mode.as_deref(), Some("Filesystem"));
    let c = Api::<PersistentVolumeClaim>::namespaced(client, "default")
        .create(&PostParams::default(), &pvc("d", Some("s"), "1Gi"))
        .await
        .unwrap();
    assert_eq!(c.spec.unwrap().volume_mode.as_deref(), Some("Filesystem"));
}

#[tokio::test(flavor = "multi_thread")]
async fn strict_field_validation() {
    use kube::api::ValidationDirective;
    let srv = TestServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(srv.client().await, "default");
    api.create(&PostParams::default(), &cm("v")).await.unwrap();
    let pp = PatchParams {
        field_validation: Some(ValidationDirective::Strict),
        ..Default::default()
    };
    let s = status(
        api.patch("v", &pp, &Patch::Merge(json!({"dataa": {"x": "y"}})))
            .await
            .unwrap_err(),
    );
    assert_eq!((s.code, s.reason.as_str()), (400, "BadRequest"));
    assert_eq!(s.message, "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"dataa\"");
    // without Strict the unknown field is accepted (and kept, a known simplification)
    api.patch(
        "v",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"x": "y"}})),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn uid_and_resource_version_preconditions_on_writes() {
    let srv = TestServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(srv.client().await, "default");
    let old = api.create(&PostParams::default(), &cm("re")).await.unwrap();
    api.delete("re", &DeleteParams::default()).await.unwrap();
    api.create(&PostParams::default(), &cm("re")).await.unwrap();
    // an unconditional update carrying the old object's uid must not hit the new object
    let mut stale = old.clone();
    stale.metadata.resource_version = None;
    let s = status(
        api.replace("re", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!(s.code, 409);
    assert!(
        s.message
            .contains("Precondition failed: UID in precondition"),
        "{}",
        s.message
    );
    let uid = old.metadata.uid.unwrap();
    let s = status(
        api.patch(
            "re",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"uid": uid}, "data": {"x": "y"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(s.code, 409);
    // server-side apply honours a resourceVersion in the applied configuration
    let s = status(
        api.patch(
            "re",
            &PatchParams::apply("m"),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "re", "resourceVersion": "1"}, "data": {"x": "y"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(s.code, 409);
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_are_logged_per_user_as_rbac_sees_them() {
    let srv = TestServer::start().await.unwrap();
    assert!(srv.kubeconfig_as("").is_err());
    assert!(srv.kubeconfig_as("a b").is_err());
    let path = srv.kubeconfig_as("alice").unwrap();
    let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let alice = kube::Client::try_from(cfg).unwrap();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(alice, "default");
    claims.list(&ListParams::default()).await.unwrap();
    let c: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "c"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }))
    .unwrap();
    claims.create(&PostParams::default(), &c).await.unwrap();
    claims
        .patch_status(
            "c",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Bound"}})),
        )
        .await
        .unwrap();
    // Another client's calls are not alice's.
    let anonymous: Api<ConfigMap> = Api::namespaced(srv.client().await, "default");
    anonymous
        .create(&PostParams::default(), &cm("x"))
        .await
        .unwrap();

    let seen: Vec<(String, String, String)> = srv
        .accesses_by("alice")
        .into_iter()
        .map(|a| (a.verb, a.group, a.resource))
        .collect();
    let want = [
        ("create", "", "persistentvolumeclaims"),
        ("list", "", "persistentvolumeclaims"),
        ("patch", "", "persistentvolumeclaims/status"),
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(v, g, r)| (v.to_string(), g.to_string(), r.to_string()))
        .collect();
    assert_eq!(seen, want);
    assert!(srv.accesses_by("bob").is_empty());
}
