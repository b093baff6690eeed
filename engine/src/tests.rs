//! Tests of graph, plan and apply together, through the fake provider.

use std::sync::Arc;

use serde_json::json;
use skyplan_state::{Backend, LocalBackend, State, Writer};

use crate::apply::{apply, ApplyOptions};
use crate::graph::ResourceGraph;
use crate::plan::{diff, Action, Plan};
use crate::redact::Redactor;
use crate::render::{human, json, Style};
use crate::testing::{graph, Fake};
use crate::{Address, Providers};

fn providers(fake: &Arc<Fake>) -> Providers {
    Providers::new().with(fake.clone())
}

fn actions(plan: &Plan) -> Vec<(String, Action)> {
    plan.changes.iter().map(|c| (c.address.to_string(), c.action)).collect()
}

async fn run(plan: &Plan, state: State, fake: &Arc<Fake>) -> (State, crate::apply::ApplyReport) {
    let (state, report, _) = run_with(plan, state, fake, ApplyOptions::new(4)).await;
    (state, report)
}

/// Apply with these options; also returns every byte written to disk.
async fn run_with(
    plan: &Plan,
    state: State,
    fake: &Arc<Fake>,
    options: ApplyOptions,
) -> (State, crate::apply::ApplyReport, String) {
    let dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path().join("s.json")));
    let writer = Writer::start(backend, state.clone());
    let report = apply(plan, &state, &providers(fake), &writer, options).await;
    let state = writer.finish().await.unwrap();
    let mut written = String::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        written.push_str(&String::from_utf8_lossy(&std::fs::read(entry.unwrap().path()).unwrap()));
    }
    (state, report, written)
}

const CHAIN: &str = r#"
[resource.test_vpc.main]
cidr = "10.0.0.0/16"
replace_on = ["cidr"]
[resource.test_subnet.a]
vpc_id = "${test_vpc.main.id}"
note = "in ${test_vpc.main.cidr}"
[resource.test_instance.x]
subnet = "${test_subnet.a.id}"
size = 1
"#;

#[test]
fn cycle_lists_the_addresses_on_it() {
    let err = graph(
        "[resource.test_a.a]\nx = \"${test_b.b.id}\"\n[resource.test_b.b]\nx = \"${test_c.c.id}\"\n[resource.test_c.c]\ndepends_on = [\"test_a.a\"]\n",
        Arc::default(),
    )
    .unwrap_err();
    assert_eq!(err.0.len(), 1);
    assert!(err.0[0].message.contains("dependency cycle: test_a.a -> test_b.b -> test_c.c -> test_a.a"), "{err}");
}

#[test]
fn missing_resource_and_attribute_name_both_ends() {
    let err = graph(
        "[resource.test_a.a]\nx = \"${test_b.nope.id}\"\ny = \"${test_a.b.zone}\"\n[resource.test_a.b]\nk = 1\n",
        Arc::default(),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("test_a.a: x refers to ${test_b.nope.id}, but there is no resource test_b.nope"), "{text}");
    assert!(text.contains("test_a.a: y refers to ${test_a.b.zone}, but test_a.b has no attribute `zone`"), "{text}");
}

#[test]
fn unknown_type_is_an_error() {
    let err = graph("[resource.nope_thing.a]\n", Arc::default()).unwrap_err();
    assert!(err.to_string().contains("no provider serves resource type `nope_thing`"), "{err}");
}

#[test]
fn layers_follow_dependencies() {
    let g = graph(CHAIN, Arc::default()).unwrap();
    let layers: Vec<Vec<String>> = g.layers().iter().map(|l| l.iter().map(|a| a.to_string()).collect()).collect();
    assert_eq!(layers, vec![vec!["test_vpc.main"], vec!["test_subnet.a"], vec!["test_instance.x"]]);
    assert!(g.to_dot().contains("\"test_vpc.main\" -> \"test_subnet.a\";"));
}

#[tokio::test]
async fn create_then_no_changes_then_update_replace_and_delete() {
    let fake = Arc::new(Fake::default());
    let g = graph(CHAIN, fake.clone()).unwrap();
    let plan = diff(&g, &State::new(), false);
    assert!(actions(&plan).iter().all(|(_, a)| *a == Action::Create));
    let subnet = plan.changes.iter().find(|c| c.address.kind == "test_subnet").unwrap();
    let after = subnet.after.as_ref().unwrap();
    assert_eq!(after["vpc_id"], json!(crate::UNKNOWN));
    assert_eq!(after["note"], json!("in 10.0.0.0/16"), "known config values resolve at plan time");

    let (state, report) = run(&plan, State::new(), &fake).await;
    assert!(report.is_success(), "{report:?}");
    assert_eq!(
        fake.log.lock().unwrap().clone(),
        ["create test_vpc.main", "create test_subnet.a", "create test_instance.x"]
    );
    assert_eq!(state.resources["test_subnet.a"].inputs["vpc_id"], state.resources["test_vpc.main"].attributes["id"]);
    assert_eq!(state.resources["test_instance.x"].dependencies, ["test_subnet.a"]);

    // Nothing changed: every change is a no-op.
    let again = diff(&g, &state, false);
    assert!(!again.has_changes(), "{:?}", actions(&again));

    // Change size: update in place, only that resource.
    let g2 = graph(&CHAIN.replace("size = 1", "size = 2"), fake.clone()).unwrap();
    let p2 = diff(&g2, &state, false);
    assert_eq!(p2.summary.update, 1);
    assert_eq!(p2.changes.iter().find(|c| c.action == Action::Update).unwrap().address.to_string(), "test_instance.x");

    // Change the VPC CIDR: the VPC is replaced, and since its id becomes
    // unknown, the subnet (whose vpc_id refers to it) is updated.
    let g3 = graph(&CHAIN.replace("10.0.0.0/16", "10.1.0.0/16"), fake.clone()).unwrap();
    let p3 = diff(&g3, &state, false);
    let acts: Vec<(String, Action)> = actions(&p3);
    assert!(acts.contains(&("test_vpc.main".into(), Action::Replace)), "{acts:?}");
    assert!(acts.contains(&("test_subnet.a".into(), Action::Update)), "{acts:?}");
    assert!(acts.contains(&("test_instance.x".into(), Action::NoOp)), "{acts:?}");
    assert_eq!(p3.changes.iter().find(|c| c.action == Action::Replace).unwrap().replace_because, ["cidr"]);
    fake.log.lock().unwrap().clear();
    let (state3, report) = run(&p3, state, &fake).await;
    assert!(report.is_success(), "{report:?}");
    assert_eq!(
        fake.log.lock().unwrap().clone(),
        ["delete test_vpc.main", "create test_vpc.main", "update test_subnet.a"]
    );
    assert_eq!(state3.resources["test_subnet.a"].inputs["vpc_id"], state3.resources["test_vpc.main"].attributes["id"]);

    // Destroy: everything, dependents first.
    let p4 = diff(&g3, &state3, true);
    assert_eq!(p4.summary.delete, 3);
    fake.log.lock().unwrap().clear();
    let (state4, report) = run(&p4, state3, &fake).await;
    assert!(report.is_success());
    assert!(state4.resources.is_empty());
    assert_eq!(
        fake.log.lock().unwrap().clone(),
        ["delete test_instance.x", "delete test_subnet.a", "delete test_vpc.main"]
    );
}

#[tokio::test]
async fn removed_resources_are_deleted_and_failures_skip_dependents() {
    let fake = Arc::new(Fake::default());
    let spec = "[resource.test_a.a]\nfail = \"create\"\n[resource.test_a.b]\nx = \"${test_a.a.id}\"\n[resource.test_a.c]\nk = 1\n";
    let g: ResourceGraph = graph(spec, fake.clone()).unwrap();
    let plan = diff(&g, &State::new(), false);
    let (state, report) = run(&plan, State::new(), &fake).await;
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].0, Address::new("test_a", "a"));
    assert_eq!(report.failed[0].2, "boom");
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(state.resources.keys().collect::<Vec<_>>(), ["test_a.c"], "the independent part is recorded");
    assert!(state.pending.is_empty(), "a create the cloud refused made nothing: no intent is left to adopt");

    // Fix the spec and remove c: a and b are created, c is deleted.
    let g2 = graph("[resource.test_a.a]\n[resource.test_a.b]\nx = \"${test_a.a.id}\"\n", fake.clone()).unwrap();
    let p2 = diff(&g2, &state, false);
    assert_eq!((p2.summary.create, p2.summary.delete), (2, 1));
    let (state2, report) = run(&p2, state, &fake).await;
    assert!(report.is_success());
    assert_eq!(state2.resources.keys().collect::<Vec<_>>(), ["test_a.a", "test_a.b"]);
    assert!(!diff(&g2, &state2, false).has_changes());
}

/// Found by the property test: Z is removed, Y stops using Z and starts
/// using X, and X is replaced. Y's update needs the new X, the new X waits
/// for the old X's delete, which waits for Z's delete (Z used X): so Z's
/// delete cannot also wait for Y's update. Everything must still run.
#[tokio::test]
async fn a_removed_resource_a_replaced_one_and_a_dependent_switching_between_them() {
    let fake = Arc::new(Fake::default());
    let before = "[resource.test_r.x]\nzone = \"a\"\nreplace_on = [\"zone\"]\n\
                  [resource.test_r.z]\nup = \"${test_r.x.id}\"\n\
                  [resource.test_r.y]\nvia = \"${test_r.z.id}\"\n";
    let g = graph(before, fake.clone()).unwrap();
    let (state, report) = run(&diff(&g, &State::new(), false), State::new(), &fake).await;
    assert!(report.is_success(), "{report:?}");

    let after = "[resource.test_r.x]\nzone = \"b\"\nreplace_on = [\"zone\"]\n\
                 [resource.test_r.y]\nvia = \"${test_r.x.id}\"\n";
    let g = graph(after, fake.clone()).unwrap();
    let plan = diff(&g, &state, false);
    let (state, report) = run(&plan, state, &fake).await;
    assert!(report.is_success(), "{report:?}");
    assert_eq!(state.resources.keys().collect::<Vec<_>>(), ["test_r.x", "test_r.y"]);
    assert_eq!(state.resources["test_r.y"].inputs["via"], state.resources["test_r.x"].attributes["id"]);
}

/// A sensitive value reaches the provider as it is, and the plan (human and
/// JSON), the state on disk and a changed value's diff only as its mask.
#[tokio::test]
async fn sensitive_values_reach_the_provider_but_not_the_plan_or_state() {
    const SPEC: &str = "[resource.test_node.a]\nuser_data = \"registry:\\n  password: s3cr3t-pw\\n\"\nsize = 1\n";
    let fake = Arc::new(Fake::default());
    let masked = |secret: &str| Redactor::new([secret.to_string()]);
    let g = graph(SPEC, fake.clone()).unwrap().with_redactor(masked("s3cr3t-pw"));
    let plan = diff(&g, &State::new(), false);
    let shown = human::plan(&plan, Style { color: false }) + &json::plan(&plan).to_string();
    assert!(!shown.contains("s3cr3t-pw"), "{shown}");
    assert!(shown.contains("password: (sensitive "), "{shown}");

    let mut options = ApplyOptions::new(4);
    options.redactor = masked("s3cr3t-pw");
    let (state, report, written) = run_with(&plan, State::new(), &fake, options).await;
    assert!(report.is_success(), "{report:?}");
    assert!(fake.sent.lock().unwrap()[0]["user_data"].as_str().unwrap().contains("password: s3cr3t-pw"));
    assert!(written.contains("test_node.a") && !written.contains("s3cr3t-pw"), "{written}");
    assert!(!serde_json::to_string(&state).unwrap().contains("s3cr3t-pw"));

    // Unchanged: the masked config equals the masked state.
    assert!(!diff(&g, &state, false).has_changes());
    // Changed: an update that shows one mask replacing the other.
    let g2 = graph(&SPEC.replace("s3cr3t-pw", "n3w-s3cr3t"), fake.clone()).unwrap().with_redactor(masked("n3w-s3cr3t"));
    let p2 = diff(&g2, &state, false);
    assert_eq!(actions(&p2), [("test_node.a".to_string(), Action::Update)]);
    let shown = human::plan(&p2, Style { color: false });
    assert!(!shown.contains("s3cr3t"), "{shown}");
    assert_eq!(shown.matches("password: (sensitive ").count(), 2, "{shown}");
}

/// A control plane behind a load balancer that lists its nodes (the AWS
/// blueprint's shape). Growing creates the new nodes, leaves the first alone
/// and then updates the balancer to register them; shrinking updates the
/// balancer first (deregistering), and only then deletes the nodes.
#[tokio::test]
async fn growing_registers_after_creating_and_shrinking_deregisters_before_deleting() {
    fn control_plane(size: usize) -> String {
        let mut spec = String::new();
        let mut ids = Vec::new();
        for n in 0..size {
            spec.push_str(&format!("[resource.test_node.cp{n}]\nimage = \"v1\"\n"));
            ids.push(format!("\"${{test_node.cp{n}.id}}\""));
        }
        spec.push_str(&format!("[resource.test_lb.api]\ninstances = [{}]\n", ids.join(", ")));
        spec
    }
    let fake = Arc::new(Fake::default());
    let one = graph(&control_plane(1), fake.clone()).unwrap();
    let (state, report) = run(&diff(&one, &State::new(), false), State::new(), &fake).await;
    assert!(report.is_success(), "{report:?}");
    let first = state.resources["test_node.cp0"].id.clone();

    let three = graph(&control_plane(3), fake.clone()).unwrap();
    let grow = diff(&three, &state, false);
    assert_eq!(
        actions(&grow),
        [
            ("test_lb.api".to_string(), Action::Update),
            ("test_node.cp0".into(), Action::NoOp),
            ("test_node.cp1".into(), Action::Create),
            ("test_node.cp2".into(), Action::Create),
        ]
    );
    fake.log.lock().unwrap().clear();
    let (state, report) = run(&grow, state, &fake).await;
    assert!(report.is_success(), "{report:?}");
    let log = fake.log.lock().unwrap().clone();
    assert_eq!(log.last().map(String::as_str), Some("update test_lb.api"), "{log:?}");
    assert!(!log.iter().any(|l| l.ends_with("test_node.cp0")), "the first node is not touched: {log:?}");
    assert_eq!(state.resources["test_node.cp0"].id, first);
    assert_eq!(state.resources["test_lb.api"].inputs["instances"].as_array().unwrap().len(), 3);

    let shrink = diff(&one, &state, false);
    assert_eq!(
        actions(&shrink),
        [
            ("test_lb.api".to_string(), Action::Update),
            ("test_node.cp0".into(), Action::NoOp),
            ("test_node.cp1".into(), Action::Delete),
            ("test_node.cp2".into(), Action::Delete),
        ]
    );
    fake.log.lock().unwrap().clear();
    let (state, report) = run(&shrink, state, &fake).await;
    assert!(report.is_success(), "{report:?}");
    let log = fake.log.lock().unwrap().clone();
    assert_eq!(log[0], "update test_lb.api", "deregister before any node goes: {log:?}");
    assert_eq!(log.len(), 3, "{log:?}");
    assert_eq!(state.resources["test_lb.api"].inputs["instances"], json!([first]));
}

/// Nodes of a rolling group, behind a balancer that names none of them (the
/// nodes register themselves), or one that lists them all.
fn rolling_nodes(image: &str, balancer_lists_them: bool, fake: &Arc<Fake>) -> ResourceGraph {
    let mut text = String::new();
    for n in 0..3 {
        text.push_str(&format!("[resource.test_node.cp{n}]\nimage = \"{image}\"\nreplace_on = [\"image\"]\n"));
        if !balancer_lists_them {
            text.push_str("lb = \"${test_lb.api.id}\"\n");
        }
    }
    text.push_str("[resource.test_lb.api]\n");
    if balancer_lists_them {
        text.push_str("instances = [\"${test_node.cp0.id}\", \"${test_node.cp1.id}\", \"${test_node.cp2.id}\"]\n");
    }
    let mut resources = crate::testing::spec(&text).resources;
    for r in resources.iter_mut().filter(|r| r.address.kind == "test_node") {
        r.rolling_group = Some("control-plane".into());
    }
    ResourceGraph::build(resources, &providers(fake)).unwrap()
}

/// A rolling group's replaces run one at a time, each creating the new node
/// before deleting the old one; the old object is recorded as deposed in
/// the same commit as its replacement, and forgotten once deleted.
#[tokio::test]
async fn a_rolling_group_is_replaced_one_at_a_time_new_before_old() {
    let fake = Arc::new(Fake::default());
    let v1 = rolling_nodes("v1", false, &fake);
    let (state, report) = run(&diff(&v1, &State::new(), false), State::new(), &fake).await;
    assert!(report.is_success(), "{report:?}");
    let old_ids: Vec<String> = (0..3).map(|n| state.resources[&format!("test_node.cp{n}")].id.clone()).collect();

    let v2 = rolling_nodes("v2", false, &fake);
    let plan = diff(&v2, &state, false);
    assert_eq!(plan.summary.replace, 3);
    assert!(plan.changes.iter().filter(|c| c.action == Action::Replace).all(|c| c.rolling_group.is_some()));
    let text = crate::render::human::plan(&plan, crate::render::Style { color: false });
    assert!(text.contains("must be replaced, new one first, one at a time"), "{text}");
    fake.log.lock().unwrap().clear();
    // Parallelism 4 would allow all three at once: the group still rolls.
    let (state, report) = run(&plan, state, &fake).await;
    assert!(report.is_success(), "{report:?}");
    assert_eq!(fake.log.lock().unwrap().clone(), rolled_one_at_a_time(3));
    assert!(state.deposed.is_empty(), "every old node is deleted and forgotten");
    for (n, old) in old_ids.iter().enumerate() {
        assert_ne!(&state.resources[&format!("test_node.cp{n}")].id, old);
    }
    assert!(!diff(&v2, &state, false).has_changes());
}

/// The log of a rolling group of `members` replaced one at a time, new
/// before old, in counting order.
fn rolled_one_at_a_time(members: u32) -> Vec<String> {
    (0..members).flat_map(|n| [format!("create test_node.cp{n}"), format!("delete test_node.cp{n}")]).collect()
}

/// `members` nodes of one rolling group behind a balancer they name, each
/// joining after the one before it (`depends_on`) when `joined`.
fn group_nodes(image: &str, members: u32, joined: bool, fake: &Arc<Fake>) -> ResourceGraph {
    let mut text = String::from("[resource.test_lb.api]\n");
    for n in 0..members {
        text.push_str(&format!(
            "[resource.test_node.cp{n}]\nimage = \"{image}\"\nreplace_on = [\"image\"]\nlb = \"${{test_lb.api.id}}\"\n"
        ));
    }
    let mut resources = crate::testing::spec(&text).resources;
    for r in resources.iter_mut().filter(|r| r.address.kind == "test_node") {
        r.rolling_group = Some("control-plane".into());
        let n: u32 = r.address.name.trim_start_matches("cp").parse().unwrap();
        if joined && n > 0 {
            r.depends_on.push(crate::address::Address::new("test_node", format!("cp{}", n - 1)));
        }
    }
    ResourceGraph::build(resources, &providers(fake)).unwrap()
}

/// Members that depend on each other (each control plane joins after the
/// one before it) still roll one at a time, new before old: the order
/// between members is the group's, not a wait of the earlier member's old
/// object for the later one's.
#[tokio::test]
async fn a_rolling_group_whose_members_join_in_order_still_rolls_one_at_a_time() {
    let fake = Arc::new(Fake::default());
    let (state, report) =
        run(&diff(&group_nodes("v1", 3, true, &fake), &State::new(), false), State::new(), &fake).await;
    assert!(report.is_success(), "{report:?}");
    let plan = diff(&group_nodes("v2", 3, true, &fake), &state, false);
    assert_eq!(plan.summary.replace, 3);
    assert!(plan.changes.iter().filter(|c| c.action == Action::Replace).all(|c| c.rolling_group.is_some()));
    crate::apply::check_order(&plan).expect("some order applies it");
    fake.log.lock().unwrap().clear();
    let (state, report) = run(&plan, state, &fake).await;
    assert!(report.is_success(), "{report:?}");
    assert_eq!(fake.log.lock().unwrap().clone(), rolled_one_at_a_time(3));
    assert!(state.deposed.is_empty());

    // Shrinking deletes the last member first, one at a time.
    let plan = diff(&group_nodes("v2", 1, true, &fake), &state, false);
    assert_eq!(plan.summary.delete, 2);
    fake.log.lock().unwrap().clear();
    let (_, report) = run(&plan, state, &fake).await;
    assert!(report.is_success(), "{report:?}");
    assert_eq!(fake.log.lock().unwrap().clone(), ["delete test_node.cp2", "delete test_node.cp1"]);
}

/// A group of more than ten rolls in counting order (`cp2` before `cp10`),
/// not in the text order of its members' names, whether or not they join
/// one after another.
#[tokio::test]
async fn a_rolling_group_of_twelve_rolls_in_counting_order() {
    for joined in [false, true] {
        let fake = Arc::new(Fake::default());
        let nodes = |image| group_nodes(image, 12, joined, &fake);
        let (state, report) = run(&diff(&nodes("v1"), &State::new(), false), State::new(), &fake).await;
        assert!(report.is_success(), "{report:?}");
        let plan = diff(&nodes("v2"), &state, false);
        crate::apply::check_order(&plan).expect("some order applies it");
        fake.log.lock().unwrap().clear();
        let (_, report) = run(&plan, state, &fake).await;
        assert!(report.is_success(), "{report:?}");
        assert_eq!(fake.log.lock().unwrap().clone(), rolled_one_at_a_time(12), "joined: {joined}");
    }
}

/// A dependent that only comes after a member (`depends_on`: workers join
/// once the first control plane is there) does not hold the member's old
/// object: its failed update leaves no old node behind.
#[tokio::test]
async fn a_dependent_ordered_after_a_rolling_member_does_not_hold_its_old_object() {
    let fake = Arc::new(Fake::default());
    let nodes = |image: &str, group: &str| {
        let mut text = String::new();
        for n in 0..2 {
            text.push_str(&format!("[resource.test_node.cp{n}]\nimage = \"{image}\"\nreplace_on = [\"image\"]\n"));
        }
        text.push_str(&format!("[resource.test_group.workers]\n{group}\ndepends_on = [\"test_node.cp0\"]\n"));
        let mut resources = crate::testing::spec(&text).resources;
        for r in resources.iter_mut().filter(|r| r.address.kind == "test_node") {
            r.rolling_group = Some("control-plane".into());
        }
        ResourceGraph::build(resources, &providers(&fake)).unwrap()
    };
    let (state, report) = run(&diff(&nodes("v1", "size = 1"), &State::new(), false), State::new(), &fake).await;
    assert!(report.is_success(), "{report:?}");
    let plan = diff(&nodes("v2", "size = 2\nfail = \"update\""), &state, false);
    assert_eq!((plan.summary.replace, plan.summary.update), (2, 1), "{:?}", actions(&plan));
    fake.log.lock().unwrap().clear();
    let (state, report) = run(&plan, state, &fake).await;
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert_eq!(report.failed[0].0, Address::new("test_group", "workers"));
    let log = fake.log.lock().unwrap().clone();
    for n in 0..2 {
        assert!(log.contains(&format!("delete test_node.cp{n}")), "{log:?}");
    }
    assert!(state.deposed.is_empty(), "no old node left behind: {:?}", state.deposed);
}

/// A balancer that lists every node needs all new ones before it can
/// update: the one-at-a-time order yields (no deadlock), every new node still
/// comes before its old one, and each old one goes only after the balancer
/// moved to the new ones.
#[tokio::test]
async fn a_rolling_group_whose_dependent_needs_every_member_still_runs() {
    let fake = Arc::new(Fake::default());
    let v1 = rolling_nodes("v1", true, &fake);
    let (state, report) = run(&diff(&v1, &State::new(), false), State::new(), &fake).await;
    assert!(report.is_success(), "{report:?}");
    let plan = diff(&rolling_nodes("v2", true, &fake), &state, false);
    fake.log.lock().unwrap().clear();
    let (state, report) = run(&plan, state, &fake).await;
    assert!(report.is_success(), "{report:?}");
    let log = fake.log.lock().unwrap().clone();
    let at = |entry: &str| log.iter().position(|l| l == entry).unwrap_or_else(|| panic!("{entry}: {log:?}"));
    for n in 0..3 {
        assert!(at(&format!("create test_node.cp{n}")) < at("update test_lb.api"), "{log:?}");
        assert!(at("update test_lb.api") < at(&format!("delete test_node.cp{n}")), "{log:?}");
    }
    assert!(state.deposed.is_empty());
}

/// A rolling group whose nodes live on something replaced old first (a
/// subnet whose range changes) cannot make a new node before the old one
/// goes: the plan replaces those nodes old first, some order applies it,
/// and it converges in one run.
#[tokio::test]
async fn a_rolling_group_on_something_replaced_old_first_is_replaced_old_first() {
    let fake = Arc::new(Fake::default());
    let nodes = |cidr: &str, image: &str| {
        let mut text = format!("[resource.test_net.a]\ncidr = \"{cidr}\"\nreplace_on = [\"cidr\"]\n");
        for n in 0..2 {
            text.push_str(&format!(
                "[resource.test_node.cp{n}]\nimage = \"{image}\"\nnet = \"${{test_net.a.id}}\"\nreplace_on = [\"image\", \"net\"]\n"
            ));
        }
        let mut resources = crate::testing::spec(&text).resources;
        for r in resources.iter_mut().filter(|r| r.address.kind == "test_node") {
            r.rolling_group = Some("control-plane".into());
        }
        ResourceGraph::build(resources, &providers(&fake)).unwrap()
    };
    let (state, report) = run(&diff(&nodes("10.0.0.0/24", "v1"), &State::new(), false), State::new(), &fake).await;
    assert!(report.is_success(), "{report:?}");

    // Only the image: the group rolls, new node first.
    let plan = diff(&nodes("10.0.0.0/24", "v2"), &state, false);
    assert!(plan.changes.iter().filter(|c| c.action == Action::Replace).all(|c| c.rolling_group.is_some()));

    // The net too: old first, and an order exists.
    let plan = diff(&nodes("10.0.1.0/24", "v2"), &state, false);
    assert_eq!(plan.summary.replace, 3, "{:?}", actions(&plan));
    assert!(plan.changes.iter().all(|c| c.rolling_group.is_none()), "{:?}", actions(&plan));
    crate::apply::check_order(&plan).expect("some order applies it");
    fake.log.lock().unwrap().clear();
    let (state, report) = run(&plan, state, &fake).await;
    assert!(report.is_success(), "{report:?}");
    let log = fake.log.lock().unwrap().clone();
    let at = |entry: &str| log.iter().position(|l| l == entry).unwrap_or_else(|| panic!("{entry}: {log:?}"));
    for n in 0..2 {
        assert!(at(&format!("delete test_node.cp{n}")) < at("delete test_net.a"), "{log:?}");
        assert!(at("create test_net.a") < at(&format!("create test_node.cp{n}")), "{log:?}");
    }
    assert!(state.deposed.is_empty());
    assert!(!diff(&nodes("10.0.1.0/24", "v2"), &state, false).has_changes());
}

/// Something that holds what is replaced old first (a load balancer on a
/// subnet the cloud will not delete under it) cannot move off it in place:
/// it is replaced too, before it, and the run converges.
#[tokio::test]
async fn what_holds_a_resource_replaced_old_first_is_replaced_before_it() {
    let fake = Arc::new(Fake::default());
    let graph = |cidr: &str| {
        let text = format!(
            "[resource.test_net.a]\ncidr = \"{cidr}\"\nreplace_on = [\"cidr\"]\n\
             [resource.test_lb.api]\nnet = \"${{test_net.a.id}}\"\nholds = [\"net\"]\n\
             [resource.test_route.r]\nnet = \"${{test_net.a.id}}\"\n"
        );
        ResourceGraph::build(crate::testing::spec(&text).resources, &providers(&fake)).unwrap()
    };
    let (state, report) = run(&diff(&graph("10.0.0.0/24"), &State::new(), false), State::new(), &fake).await;
    assert!(report.is_success(), "{report:?}");

    let plan = diff(&graph("10.0.1.0/24"), &state, false);
    let action = |a: &str| plan.changes.iter().find(|c| c.address.to_string() == a).unwrap();
    assert_eq!(action("test_lb.api").action, Action::Replace, "{:?}", actions(&plan));
    assert_eq!(action("test_lb.api").replace_because, ["net"]);
    assert_eq!(action("test_route.r").action, Action::Update, "what only names it is updated in place");
    crate::apply::check_order(&plan).expect("some order applies it");
    fake.log.lock().unwrap().clear();
    let (state, report) = run(&plan, state, &fake).await;
    assert!(report.is_success(), "{report:?}");
    let log = fake.log.lock().unwrap().clone();
    let at = |entry: &str| log.iter().position(|l| l == entry).unwrap_or_else(|| panic!("{entry}: {log:?}"));
    assert!(at("delete test_lb.api") < at("delete test_net.a"), "{log:?}");
    assert!(at("create test_net.a") < at("create test_lb.api"), "{log:?}");
    assert!(!diff(&graph("10.0.1.0/24"), &state, false).has_changes());
}

/// A run stopped between a rolling replacement's create and its old
/// object's delete leaves the old object in the state's `deposed`; the next
/// plan deletes it (and nothing else).
#[tokio::test]
async fn a_deposed_object_left_by_an_interrupted_roll_is_deleted_by_the_next_plan() {
    let fake = Arc::new(Fake::default());
    let v1 = rolling_nodes("v1", false, &fake);
    let (mut state, report) = run(&diff(&v1, &State::new(), false), State::new(), &fake).await;
    assert!(report.is_success(), "{report:?}");
    let mut old = state.resources["test_node.cp0"].clone();
    old.id = "f-old".into();
    old.attributes.insert("id".into(), json!("f-old"));
    state.deposed.insert("test_node.cp0".into(), old);

    let plan = diff(&v1, &state, false);
    assert_eq!(plan.summary.delete, 1, "{:?}", actions(&plan));
    let deposed = plan.changes.iter().find(|c| c.deposed).unwrap();
    assert_eq!(deposed.address.to_string(), "test_node.cp0");
    assert_eq!(deposed.before.as_ref().unwrap()["id"], json!("f-old"));
    let text = crate::render::human::plan(&plan, crate::render::Style { color: false });
    assert!(text.contains("(deposed: the object a replacement left) will be destroyed"), "{text}");
    let json = crate::render::json::plan(&plan);
    let marked: Vec<&serde_json::Value> =
        json["changes"].as_array().unwrap().iter().filter(|c| c["deposed"] == json!(true)).collect();
    assert_eq!(marked.len(), 1);
    assert_eq!((marked[0]["address"].as_str(), marked[0]["action"].as_str()), (Some("test_node.cp0"), Some("delete")));
    fake.log.lock().unwrap().clear();
    let (state, report) = run(&plan, state, &fake).await;
    assert!(report.is_success(), "{report:?}");
    assert_eq!(fake.log.lock().unwrap().clone(), ["delete test_node.cp0"]);
    assert!(state.deposed.is_empty());
    assert!(state.resources.contains_key("test_node.cp0"), "the current object stays");
    assert!(!diff(&v1, &state, false).has_changes());

    // Destroyed with everything else, a deposed node still goes before what
    // it depended on (the balancer).
    let mut state = state;
    let mut old = state.resources["test_node.cp1"].clone();
    old.id = "f-old1".into();
    state.deposed.insert("test_node.cp1".into(), old);
    fake.log.lock().unwrap().clear();
    let (state, report) = run(&diff(&v1, &state, true), state, &fake).await;
    assert!(report.is_success(), "{report:?}");
    assert!(state.resources.is_empty() && state.deposed.is_empty());
    let log = fake.log.lock().unwrap().clone();
    assert_eq!(log.last().map(String::as_str), Some("delete test_lb.api"), "{log:?}");
    assert_eq!(log.iter().filter(|l| *l == "delete test_node.cp1").count(), 2, "current and deposed: {log:?}");
}

/// Killed during a rolling replacement's create: the state holds the old
/// object and the intent. The next plan adopts what the create made and
/// keeps the old object as deposed, to delete it.
#[tokio::test]
async fn an_interrupted_rolling_create_adopts_the_new_object_and_deposes_the_old() {
    let fake = Arc::new(Fake::default());
    let v1 = rolling_nodes("v1", false, &fake);
    let (mut state, report) = run(&diff(&v1, &State::new(), false), State::new(), &fake).await;
    assert!(report.is_success(), "{report:?}");
    let old = state.resources["test_node.cp0"].clone();
    let mut inputs = old.inputs.clone();
    inputs.insert("image".into(), json!("v2"));
    state.pending.insert(
        "test_node.cp0".into(),
        skyplan_state::PendingCreate {
            kind: "test_node".into(),
            provider: "fake".into(),
            client_token: "t".into(),
            inputs: inputs.clone(),
            dependencies: old.dependencies.clone(),
        },
    );
    let mut made = inputs.clone();
    made.insert("id".into(), json!("f-new"));
    made.insert("arn".into(), json!("arn:f-new"));
    let address = Address::new("test_node", "cp0");
    fake.cloud.lock().unwrap().push(crate::Owned { address, kind: "test_node".into(), attributes: made });

    crate::refresh::settle_pending(&mut state, &providers(&fake), &Redactor::default()).await.unwrap();
    assert_eq!(state.resources["test_node.cp0"].id, "f-new");
    assert_eq!(state.deposed["test_node.cp0"].id, old.id);
    let plan = diff(&rolling_nodes("v2", false, &fake), &state, false);
    let deposed: Vec<_> = plan.changes.iter().filter(|c| c.deposed).collect();
    assert_eq!(deposed.len(), 1);
    assert_eq!(deposed[0].before.as_ref().unwrap()["id"], json!(old.id));
}

/// A create that made its object and then failed keeps its intent, and the
/// next run adopts exactly that object; a refused one leaves nothing to
/// adopt, even when the cloud holds something else at the same address
/// under other tags (which the provider's `find` does not return).
#[tokio::test]
async fn a_failed_create_keeps_its_intent_only_when_the_cloud_made_something() {
    let fake = Arc::new(Fake::default());
    let spec = "[resource.test_a.made]\nfail = \"after_create\"\n[resource.test_a.refused]\nfail = \"create\"\n";
    let g = graph(spec, fake.clone()).unwrap();
    let (mut state, report) = run(&diff(&g, &State::new(), false), State::new(), &fake).await;
    assert_eq!(report.failed.len(), 2, "{report:?}");
    assert_eq!(state.pending.keys().collect::<Vec<_>>(), ["test_a.made"]);
    let drift = crate::refresh::settle_pending(&mut state, &providers(&fake), &Redactor::default()).await.unwrap();
    assert_eq!(drift, [crate::refresh::Drift::Adopted(Address::new("test_a", "made"), "f-1".into())]);
    assert_eq!(fake.ids(), state.resources.values().map(|r| r.id.clone()).collect());
}
