//! On-demand prices in any region, end to end: `plan` asks the AWS Price
//! List API (`pricing:GetProducts`) for a spot pool without
//! `on_demand_price`, and falls back to skyplan's dated table, saying so
//! once, when the API cannot answer. The emulator has no pricing API, so
//! the binary's Price List requests go to [`FakePriceList`], a GetProducts
//! endpoint on 127.0.0.1 that answers in the real response shape (each
//! product a JSON document inside a string), through the SDK's own
//! per-service endpoint setting `AWS_ENDPOINT_URL_PRICING`; everything else
//! goes to the emulator.

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::emulator::Emulator;
use crate::support::Workdir;

/// How the fake answers one GetProducts.
enum Reply {
    /// 200 with these products (see [`product`]).
    Products(Vec<String>),
    /// 400 AccessDeniedException, as AWS answers a user without the action.
    Denied,
}

/// A Price List endpoint on 127.0.0.1 that answers each GetProducts with
/// `answer(request body)` and records the request bodies.
struct FakePriceList {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl FakePriceList {
    fn start(answer: fn(&Value) -> Reply) -> FakePriceList {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let seen = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                // One request per connection read; keep-alive connections
                // send the next request on the same stream.
                loop {
                    let mut length = None;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            break;
                        }
                        if line == "\r\n" {
                            length = length.or(Some(0));
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = Some(v.trim().parse().unwrap());
                        }
                    }
                    let Some(length) = length else { break };
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        break;
                    }
                    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let (status, out) = match answer(&body) {
                        Reply::Products(list) => ("200 OK", json!({"FormatVersion": "aws_v1", "PriceList": list})),
                        Reply::Denied => (
                            "400 Bad Request",
                            json!({"__type": "AccessDeniedException", "Message": "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: pricing:GetProducts"}),
                        ),
                    };
                    seen.lock().unwrap().push(body);
                    let out = out.to_string();
                    let written = write!(
                        stream,
                        "HTTP/1.1 {status}\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\r\n{out}",
                        out.len()
                    );
                    if written.is_err() {
                        break;
                    }
                }
            }
        });
        FakePriceList { url, bodies }
    }

    fn requests(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }
}

/// One GetProducts product: the fields skyplan reads, in their real nesting.
fn product(instance_type: &str, region: &str, usd: &str) -> String {
    json!({
        "product": {"productFamily": "Compute Instance", "sku": "SKU1",
                    "attributes": {"instanceType": instance_type, "regionCode": region, "operatingSystem": "Linux",
                                   "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used"}},
        "serviceCode": "AmazonEC2",
        "terms": {"OnDemand": {"SKU1.JRTCKXETXF": {
            "priceDimensions": {"SKU1.JRTCKXETXF.6YS6EN2CT7": {"unit": "Hrs", "pricePerUnit": {"USD": usd},
                "description": format!("${usd} per On Demand Linux {instance_type} Instance Hour")}},
            "sku": "SKU1", "offerTermCode": "JRTCKXETXF", "effectiveDate": "2026-11-01T00:00:00Z"}}},
        "version": "20261101000000", "publicationDate": "2026-11-01T00:00:00Z"
    })
    .to_string()
}

/// The questions about instance prices (the others are the cost
/// estimate's other charges).
fn instance_questions(requests: &[Value]) -> Vec<Value> {
    requests.iter().filter(|r| filter(r, "instanceType").is_some()).cloned().collect()
}

/// A filter's value in a GetProducts request body.
fn filter<'a>(body: &'a Value, field: &str) -> Option<&'a str> {
    body["Filters"].as_array()?.iter().find(|f| f["Field"] == field)?["Value"].as_str()
}

/// The spot example moved to `region` (a region skyplan's table lacks, or not).
fn spot_in(region: &str) -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/spot-pool.toml"))
        .unwrap()
        .replace("us-east-1", region)
}

/// A workdir whose runs talk to `emulator` for everything but the Price List
/// API, which is at `pricing`.
fn workdir(emulator: &Emulator, pricing: &str) -> Workdir {
    let mut w = Workdir::new();
    w.env = emulator.env().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    w.env.push(("AWS_ENDPOINT_URL_PRICING".into(), pricing.to_string()));
    w
}

/// The notes about prices in a run's stderr.
fn price_notes(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.starts_with("note:") && l.contains("Price List API")).collect()
}

/// The spot example in af-south-1, a region the table does not cover: the
/// plan takes m5.xlarge's on-demand price from the Price List API (asked
/// with the region's code and the Linux on-demand filters), its max price
/// is 60% of it in the human plan, `--json` and the launch template, and
/// the cost estimate prices the pool's instances with the same answer,
/// naming the API and the date. `validate` asks nothing (no cloud calls).
#[test]
fn a_spot_pool_outside_the_table_plans_with_the_price_list_apis_price() {
    let emulator = Emulator::start();
    let api = FakePriceList::start(|body| match (filter(body, "regionCode"), filter(body, "instanceType")) {
        (Some("af-south-1"), Some("m5.xlarge")) => {
            Reply::Products(vec![product("m5.xlarge", "af-south-1", "0.2270000000")])
        }
        _ => Reply::Products(vec![]),
    });
    let w = workdir(&emulator, &api.url);
    w.write("spot.toml", &spot_in("af-south-1"));

    w.run(&["validate", "spot.toml"]).ok();
    assert!(api.requests().is_empty(), "validate makes no cloud call: {:?}", api.requests());

    let plan = w.run(&["plan", "spot.toml"]).ok();
    assert!(
        plan.stdout.contains("  spot m5.xlarge max $0.1362/h = 60% of on-demand $0.227/h (the AWS Price List API)\n"),
        "{}",
        plan.stdout
    );
    assert!(price_notes(&plan.stderr).is_empty(), "the API answered: no note\n{}", plan.stderr);
    let asked = instance_questions(&api.requests());
    assert_eq!(asked.len(), 1, "one spot pool without on_demand_price, one question: {asked:?}");
    assert_eq!(asked[0]["ServiceCode"], "AmazonEC2");
    for (field, value) in [
        ("instanceType", "m5.xlarge"),
        ("regionCode", "af-south-1"),
        ("operatingSystem", "Linux"),
        ("tenancy", "Shared"),
    ] {
        assert_eq!(filter(&asked[0], field), Some(value), "{field} in {}", asked[0]);
    }

    let json: Value = serde_json::from_str(&w.run(&["plan", "spot.toml", "--json"]).ok().stdout).unwrap();
    let spot = &json["spot"][0];
    assert_eq!(spot["on_demand_price_source"], "price_list_api");
    assert_eq!(spot["on_demand_price"], 0.227);
    assert_eq!(spot["max_price"], "0.1362");
    assert!(spot.get("price_table_as_of").is_none(), "{spot}");
    let template = json["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == "aws_launch_template.pool[spot]")
        .expect("the spot pool's launch template");
    assert_eq!(template["after"]["spot_max_price"], "0.1362");
    let sources = json["cost"]["sources"].as_array().unwrap();
    let from_api = sources.iter().find(|s| s["source"] == "the AWS Price List API").expect("the API is a source");
    assert_eq!(from_api["prices"], "instances of type m5.xlarge");
    assert_eq!(from_api["as_of"].as_str().map(str::len), Some(10), "{from_api}");
    let pool = json["cost"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["address"] == "aws_autoscaling_group.pool[spot]")
        .expect("the spot pool is priced");
    // 2 nodes at the max price, 0.1362 x 730 each, plus volumes (no gp3
    // price for af-south-1 in the service table: named as unpriced).
    assert_eq!(pool["monthly_after"], 198.85, "{pool}");
}

/// The API denied (AccessDeniedException) or unreachable: the plan goes on
/// with the dated table, saying once which source and of what date, even
/// with two pools to price, and asks no more after the first failure.
#[test]
fn a_denied_or_unreachable_price_list_api_falls_back_to_the_table_with_one_note() {
    let emulator = Emulator::start();
    let api = FakePriceList::start(|_| Reply::Denied);
    let w = workdir(&emulator, &api.url);
    // Two spot pools without on_demand_price, in a region dated 2025-01-01.
    let spec = spot_in("us-west-2")
        + "\n[[node_pool]]\nname = \"spot-small\"\nsize = 1\nmin = 0\nmax = 2\ninstance_type = \"m5.large\"\nspot = { max_price_percent = 50 }\n";
    w.write("spot.toml", &spec);
    let as_of = "2025-01-01";

    let plan = w.run(&["plan", "spot.toml"]).ok();
    let notes = price_notes(&plan.stderr);
    assert_eq!(notes.len(), 1, "one note:\n{}", plan.stderr);
    assert_eq!(
        notes[0],
        format!(
            "note: the AWS Price List API could not be asked: AWS denied pricing:GetProducts to these credentials \
             (AccessDeniedException: User: arn:aws:iam::123456789012:user/ci is not authorized to perform: \
             pricing:GetProducts); the on-demand prices of m5.large, m5.xlarge in us-west-2 come from skyplan's \
             price table as of {as_of}"
        )
    );
    assert_eq!(api.requests().len(), 1, "no second question after a denial: {:?}", api.requests());
    let line =
        format!("  spot m5.xlarge max $0.1152/h = 60% of on-demand $0.192/h (skyplan's price table as of {as_of})");
    assert!(plan.stdout.contains(&line), "{}", plan.stdout);
    assert!(plan.stdout.contains("  spot-small m5.large max $0.048/h = 50% of on-demand $0.096/h"), "{}", plan.stdout);

    let json: Value = serde_json::from_str(&w.run(&["plan", "spot.toml", "--json"]).ok().stdout).unwrap();
    assert_eq!(json["spot"][0]["on_demand_price_source"], "price_table");
    assert_eq!(json["spot"][0]["price_table_as_of"], as_of);

    // Unreachable (nothing listens there): the same fallback, one note naming the endpoint.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let w = workdir(&emulator, &closed);
    w.write("spot.toml", &spec);
    let plan = w.run(&["plan", "spot.toml"]).ok();
    let notes = price_notes(&plan.stderr);
    assert_eq!(notes.len(), 1, "{}", plan.stderr);
    assert!(notes[0].contains(&closed) && notes[0].contains(as_of), "{}", notes[0]);
    assert!(plan.stdout.contains(&line), "{}", plan.stdout);
}

/// Neither the API nor the table has a price (af-south-1, and the API knows
/// no such product): `plan` and `apply` stop with the pool's key at its
/// file:line:column, asking for on_demand_price, exit 1, and write nothing.
#[test]
fn neither_the_api_nor_the_table_has_a_price_it_is_an_error_at_the_pool() {
    let emulator = Emulator::start();
    let api = FakePriceList::start(|_| Reply::Products(vec![]));
    let w = workdir(&emulator, &api.url);
    w.write("spot.toml", &spot_in("af-south-1"));
    let line = 1 + spot_in("af-south-1").lines().position(|l| l.starts_with("spot = {")).unwrap();
    for args in [vec!["plan", "spot.toml"], vec!["apply", "spot.toml", "--auto-approve"]] {
        let run = w.run(&args).code(1);
        assert!(
            run.stderr.contains(&format!(
                "spot.toml:{line}:1: node_pool[2].spot.on_demand_price: skyplan's on-demand price table (as of 2026-07-20) has no price for m5.xlarge in af-south-1"
            )),
            "{args:?}:\n{}",
            run.stderr
        );
        assert!(run.stderr.contains("set on_demand_price"), "{}", run.stderr);
        assert!(
            run.stderr.contains("the AWS Price List API has no on-demand Linux price for m5.xlarge in af-south-1"),
            "{}",
            run.stderr
        );
        assert!(!w.exists("spot.state.json"), "{args:?} wrote a state");
    }
    // Unreachable and not in the table: the note says why, without claiming the table has it.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let elsewhere = workdir(&emulator, &closed);
    elsewhere.write("spot.toml", &spot_in("af-south-1"));
    let run = elsewhere.run(&["plan", "spot.toml"]).code(1);
    let notes = price_notes(&run.stderr);
    assert_eq!(notes.len(), 1, "{}", run.stderr);
    assert!(notes[0].starts_with("note: the AWS Price List API could not be asked: "), "{}", notes[0]);
    assert!(notes[0].contains(&closed), "{}", notes[0]);
    assert!(!notes[0].contains("come from skyplan's price table"), "{}", notes[0]);
    assert!(run.stderr.contains("node_pool[2].spot.on_demand_price: "), "{}", run.stderr);
    // On-demand price in the spec: no instance price is asked (the cost
    // estimate's other charges are).
    let asked = instance_questions(&api.requests()).len();
    w.write(
        "spot.toml",
        &spot_in("af-south-1").replace("max_price_percent = 60 }", "max_price_percent = 60, on_demand_price = 0.25 }"),
    );
    w.run(&["plan", "spot.toml"]).ok();
    assert_eq!(instance_questions(&api.requests()).len(), asked);
}

/// A product of another offer (NAT gateway, load balancer, VPC, EBS) as
/// GetProducts lists it: the fields skyplan reads, in their real nesting.
fn service_product(code: &str, family: &str, usagetype: &str, unit: &str, usd: &str) -> String {
    json!({
        "product": {"productFamily": family, "sku": "SKU2", "attributes": {"usagetype": usagetype, "servicecode": code}},
        "serviceCode": code,
        "terms": {"OnDemand": {"SKU2.JRTCKXETXF": {
            "priceDimensions": {"SKU2.JRTCKXETXF.6YS6EN2CT7": {"unit": unit, "pricePerUnit": {"USD": usd},
                "beginRange": "0", "endRange": "Inf", "description": format!("${usd} per {unit} of {usagetype}")}},
            "sku": "SKU2", "offerTermCode": "JRTCKXETXF", "effectiveDate": "2026-11-01T00:00:00Z"}}},
        "version": "20261101000000", "publicationDate": "2026-11-01T00:00:00Z"
    })
    .to_string()
}

/// The Price List API's answers in af-south-1 (a region neither of skyplan's
/// tables has) for the spot pool's type and the cost estimate's other
/// charges, each beside a neighbour of its offer that must not be taken.
fn af_south_1(body: &Value) -> Reply {
    if filter(body, "regionCode") != Some("af-south-1") {
        return Reply::Products(vec![]);
    }
    let family = filter(body, "productFamily").unwrap_or("");
    Reply::Products(match (body["ServiceCode"].as_str().unwrap(), family) {
        ("AmazonEC2", _) if filter(body, "instanceType") == Some("m5.xlarge") => {
            vec![product("m5.xlarge", "af-south-1", "0.2270000000")]
        }
        ("AmazonEC2", "NAT Gateway") => vec![
            service_product("AmazonEC2", family, "AFS1-NatGateway-Bytes", "GB", "0.0600000000"),
            service_product("AmazonEC2", family, "AFS1-NatGateway-Hours", "Hrs", "0.0600000000"),
        ],
        ("AWSELB", "Load Balancer") => {
            vec![service_product("AWSELB", family, "AFS1-LoadBalancerUsage", "Hrs", "0.0320000000")]
        }
        ("AmazonVPC", "") => vec![
            service_product("AmazonVPC", "VpcEndpoint", "AFS1-VpcEndpoint-Hours", "Hrs", "0.0130000000"),
            service_product("AmazonVPC", "", "AFS1-PublicIPv4:InUseAddress", "Hrs", "0.0050000000"),
        ],
        ("AmazonEC2", "Storage") if filter(body, "volumeApiName") == Some("gp3") => {
            vec![service_product("AmazonEC2", family, "AFS1-EBS:VolumeUsage.gp3", "GB-Mo", "0.1040000000")]
        }
        _ => vec![],
    })
}

/// The cost estimate's other charges come from the Price List API for the
/// plan's region when it answers (af-south-1: neither table has them, so
/// before they were left out), each asked with its own query, and the
/// sources say so; denied, the plan falls back to the dated table
/// (us-east-1) and asks nothing more; in a region the table lacks and the
/// API cannot answer, they are named as not priced.
#[test]
fn the_other_charges_are_priced_by_the_price_list_api_else_the_table() {
    let emulator = Emulator::start();
    let api = FakePriceList::start(af_south_1);
    let w = workdir(&emulator, &api.url);
    w.write("spot.toml", &spot_in("af-south-1"));
    let json: Value = serde_json::from_str(&w.run(&["plan", "spot.toml", "--json"]).ok().stdout).unwrap();
    let cost = &json["cost"];
    let item = |address: &str| -> Value {
        cost["items"].as_array().unwrap().iter().find(|i| i["address"] == address).cloned().unwrap_or(Value::Null)
    };
    let nats: Vec<Value> = cost["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["address"].as_str().unwrap().starts_with("aws_nat_gateway."))
        .cloned()
        .collect();
    assert!(!nats.is_empty(), "{cost}");
    for nat in &nats {
        assert_eq!(nat["monthly_after"], 43.8, "0.06 x 730: {nat}");
    }
    // The ELB: 0.032 + one IPv4 address per subnet at 0.005, x 730.
    let elb = item("aws_elb.apiserver");
    let subnets = json["changes"].as_array().unwrap().iter().find(|c| c["address"] == "aws_elb.apiserver").unwrap()
        ["after"]["subnets"]
        .as_array()
        .unwrap()
        .len() as f64;
    let expected = ((0.032 + 0.005 * subnets) * 730.0 * 100.0).round() / 100.0;
    assert_eq!(elb["monthly_after"].as_f64(), Some(expected), "{elb}");
    // The spot pool: 2 x 0.1362 x 730 + its volumes at 0.104 per GB-month.
    let pool = item("aws_autoscaling_group.pool[spot]");
    assert!(pool["description"].as_str().unwrap().contains("GiB gp3"), "{pool}");
    assert!(pool["monthly_after"].as_f64().unwrap() > 198.85, "volumes priced now: {pool}");
    let from_api: Vec<&str> = cost["sources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["source"] == "the AWS Price List API")
        .map(|s| s["prices"].as_str().unwrap())
        .collect();
    assert_eq!(
        from_api,
        ["instances of type m5.xlarge", "NAT gateways, the load balancer, public IPv4 addresses and volumes"],
        "{cost}"
    );
    let unpriced: Vec<&str> =
        cost["unpriced"].as_array().map(|u| u.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    assert!(unpriced.iter().all(|u| !u.contains("NAT gateway") && !u.contains("volumes")), "{unpriced:?}");
    // Each charge asked once per plan, with its own filters.
    let asked = api.requests();
    let services: Vec<(&str, Option<&str>)> = asked
        .iter()
        .filter(|r| filter(r, "instanceType").is_none())
        .map(|r| (r["ServiceCode"].as_str().unwrap(), filter(r, "productFamily")))
        .collect();
    assert_eq!(
        services,
        [
            ("AmazonEC2", Some("NAT Gateway")),
            ("AWSELB", Some("Load Balancer")),
            ("AmazonVPC", None),
            ("AmazonEC2", Some("Storage"))
        ]
    );
    assert!(asked.iter().all(|r| filter(r, "regionCode") == Some("af-south-1")));

    // Denied, in us-east-1 (no spot question first: on_demand_price given):
    // one question, then the table's prices, named with their date.
    let denied = FakePriceList::start(|_| Reply::Denied);
    let w = workdir(&emulator, &denied.url);
    w.write(
        "spot.toml",
        &spot_in("us-east-1").replace("max_price_percent = 60 }", "max_price_percent = 60, on_demand_price = 0.192 }"),
    );
    let plan = w.run(&["plan", "spot.toml", "--json"]).ok();
    let json: Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(denied.requests().len(), 1, "no second question after a denial: {:?}", denied.requests());
    let sources = json["cost"]["sources"].as_array().unwrap();
    let table = sources
        .iter()
        .find(|s| s["prices"] == "NAT gateways, the load balancer, public IPv4 addresses and volumes")
        .unwrap_or_else(|| panic!("{sources:?}"));
    assert!(table["source"].as_str().unwrap().starts_with("skyplan's price table ("), "{table}");
    assert_eq!(table["as_of"], "2026-02-24");
    assert!(sources.iter().all(|s| s["source"] != "the AWS Price List API"), "{sources:?}");
    let nat = json["cost"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["address"].as_str().unwrap().starts_with("aws_nat_gateway."))
        .unwrap();
    assert_eq!(nat["monthly_after"], 32.85, "0.045 x 730, the table's");

    // Unreachable in af-south-1: the table has nothing there either; the
    // charges are named as not priced and left out.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let w = workdir(&emulator, &closed);
    w.write(
        "spot.toml",
        &spot_in("af-south-1").replace("max_price_percent = 60 }", "max_price_percent = 60, on_demand_price = 0.25 }"),
    );
    let json: Value = serde_json::from_str(&w.run(&["plan", "spot.toml", "--json"]).ok().stdout).unwrap();
    let unpriced: Vec<&str> = json["cost"]["unpriced"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(unpriced.iter().any(|u| u.contains("no price for a NAT gateway in af-south-1")), "{unpriced:?}");
    assert!(unpriced.iter().any(|u| u.contains("no price for a classic load balancer in af-south-1")), "{unpriced:?}");
    assert!(json["cost"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| !i["address"].as_str().unwrap().starts_with("aws_nat_gateway.")));
}
