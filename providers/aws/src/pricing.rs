//! On-demand EC2 prices in any region, from the AWS Price List API
//! (`pricing:GetProducts`, granted by the seed's Deployment policy), with
//! skyplan's dated table (`skyplan_aws_blueprint::prices`) as the fallback.
//!
//! The API: one service endpoint that answers for every region, reachable in
//! us-east-1 and ap-south-1 only ([`PRICING_REGIONS`]). GetProducts with
//! `ServiceCode = AmazonEC2` and term-match filters on the instance type,
//! the region code and the Linux / shared tenancy / no pre-installed
//! software / used capacity attributes answers with `PriceList`: a list of
//! *JSON documents as strings*, one per product, each holding
//! `terms.OnDemand.<offer>.priceDimensions.<rate>.pricePerUnit.USD`.
//! [`parse_price_list`] reads that shape; the tests serve it from a fake
//! server on 127.0.0.1 (the emulator has no pricing API).
//!
//! The API: [`Pricing::on_demand`] (region, instance type) -> [`Price`], a
//! price in USD per hour and where it came from; the API's price when it
//! answers with one, else the table's, with why the API was not used.
//!
//! The cost estimate's other charges (NAT gateway, classic load balancer,
//! public IPv4 address, gp3 volume) are asked the same way with
//! [`Pricing::service_price`], each by the query of [`SERVICE_QUERIES`];
//! their fallback table is the blueprint's `data/service-prices.toml`,
//! applied by the estimate itself (`skyplan_aws_blueprint::cost`).

use std::time::Duration;

use aws_config::{Region, SdkConfig};
use aws_sdk_pricing::types::{Filter, FilterType};
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use serde_json::Value;

use skyplan_aws_blueprint::cost::ServiceItem;

use crate::calls::RetryStats;
use crate::error::ApiError;
use crate::retry::{self, Backoff, Retry, RetryPolicy};

/// The regions whose endpoint serves the Price List API.
pub const PRICING_REGIONS: [&str; 2] = ["us-east-1", "ap-south-1"];

/// How [`Source::Table`]'s `why` begins when the API could not be asked at
/// all (denied, unreachable): asking it again in the same run is no use.
pub const NOT_ASKED: &str = "the AWS Price List API could not be asked";

/// Where an on-demand price came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The AWS Price List API, asked just now.
    PriceList,
    /// skyplan's table as of `as_of` (`YYYY-MM-DD`), because the API could
    /// not be used: `why`.
    Table { as_of: String, why: String },
}

/// How to ask GetProducts for one charge besides instances: the offer
/// (`service_code`), term-match filters beside `regionCode` (added per
/// region), and which of the answer's products and price dimensions are
/// the charge: the product's `usagetype` ends with `usagetype_suffix` (AWS
/// prefixes it with a region code, `USE1-`, `EUW1-`, ..., none for some
/// us-east-1 products) and the dimension's `unit` is `unit`. The API
/// documents the attributes per offer (GetServices, GetAttributeValues);
/// these are the ones of the offers as of 2026:
#[derive(Debug, Clone, Copy)]
pub struct ServiceQuery {
    pub item: ServiceItem,
    pub service_code: &'static str,
    pub filters: &'static [(&'static str, &'static str)],
    pub usagetype_suffix: &'static str,
    pub unit: &'static str,
}

pub const SERVICE_QUERIES: [ServiceQuery; 4] = [
    // EC2 offer, "NAT Gateway" family: `NatGateway-Hours` (per hour, this)
    // and `NatGateway-Bytes` (per GB processed, traffic: not estimated).
    ServiceQuery {
        item: ServiceItem::NatGatewayHour,
        service_code: "AmazonEC2",
        filters: &[("productFamily", "NAT Gateway")],
        usagetype_suffix: "NatGateway-Hours",
        unit: "Hrs",
    },
    // Elastic Load Balancing offer: the classic load balancer is the
    // "Load Balancer" family (application and network ones are "Load
    // Balancer-Application" / "-Network"): `LoadBalancerUsage` per hour,
    // `DataProcessing-Bytes` per GB.
    ServiceQuery {
        item: ServiceItem::ClassicLoadBalancerHour,
        service_code: "AWSELB",
        filters: &[("productFamily", "Load Balancer")],
        usagetype_suffix: "LoadBalancerUsage",
        unit: "Hrs",
    },
    // VPC offer: every public IPv4 address in use (Elastic IPs, instances'
    // and load balancers' addresses) is `PublicIPv4:InUseAddress` per hour
    // (idle Elastic IPs `PublicIPv4:IdleAddress`, the same rate). Its
    // product family is not a stable filter: the usage type selects it.
    ServiceQuery {
        item: ServiceItem::PublicIpv4Hour,
        service_code: "AmazonVPC",
        filters: &[],
        usagetype_suffix: "PublicIPv4:InUseAddress",
        unit: "Hrs",
    },
    // EC2 offer, "Storage" family, `volumeApiName` gp3: `EBS:VolumeUsage.gp3`
    // per GB-month (its IOPS and throughput above the baseline are other
    // usage types: the blueprint's volumes stay at the baseline).
    ServiceQuery {
        item: ServiceItem::Gp3GbMonth,
        service_code: "AmazonEC2",
        filters: &[("productFamily", "Storage"), ("volumeApiName", "gp3")],
        usagetype_suffix: "EBS:VolumeUsage.gp3",
        unit: "GB-Mo",
    },
];

impl ServiceQuery {
    pub fn of(item: ServiceItem) -> &'static ServiceQuery {
        SERVICE_QUERIES.iter().find(|q| q.item == item).expect("every charge has a query")
    }
}

/// An on-demand Linux price in USD per hour.
#[derive(Debug, Clone, PartialEq)]
pub struct Price {
    pub usd_per_hour: f64,
    pub source: Source,
}

/// A Price List API client.
#[derive(Debug, Clone)]
pub struct Pricing {
    client: aws_sdk_pricing::Client,
    retry: RetryPolicy,
    /// Where requests go, for errors without an answer.
    endpoint: String,
}

impl Pricing {
    /// A client with `sdk`'s credentials and endpoint, in the pricing
    /// region nearest `sdk`'s region (ap-south-1 for `ap-*`, else
    /// us-east-1). Prices are a convenience: few quick tries, short
    /// timeouts, then the table.
    pub fn new(sdk: &SdkConfig) -> Pricing {
        let near = sdk.region().map(|r| r.as_ref().starts_with("ap-")).unwrap_or(false);
        let region = if near { PRICING_REGIONS[1] } else { PRICING_REGIONS[0] };
        let config = aws_sdk_pricing::config::Builder::from(sdk)
            .region(Region::new(region))
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(20))
                    .build(),
            )
            .build();
        // Where the SDK sends it: the service's own endpoint setting
        // (`AWS_ENDPOINT_URL_PRICING`), else the shared one, else AWS's.
        let own = std::env::var("AWS_ENDPOINT_URL_PRICING").ok().filter(|u| !u.is_empty());
        let endpoint = match own.as_deref().or(sdk.endpoint_url()) {
            Some(url) => url.to_string(),
            None => format!("https://api.pricing.{region}.amazonaws.com"),
        };
        Pricing {
            endpoint,
            client: aws_sdk_pricing::Client::from_conf(config),
            retry: RetryPolicy {
                max_attempts: 3,
                backoff: Backoff { base: Duration::from_millis(250), cap: Duration::from_secs(2) },
            },
        }
    }

    /// The on-demand Linux price of `instance_type` in `region`: the Price
    /// List API's, else the table's (saying why the API's was not used).
    /// `Err` only when neither has one; the message says both.
    pub async fn on_demand(&self, region: &str, instance_type: &str) -> Result<Price, String> {
        let why = match self.price_list(region, instance_type).await {
            Ok(Some(usd_per_hour)) => return Ok(Price { usd_per_hour, source: Source::PriceList }),
            Ok(None) => format!("the AWS Price List API has no on-demand Linux price for {instance_type} in {region}"),
            Err(e) => format!("{NOT_ASKED}: {}", first_line(&e.to_string())),
        };
        let table = skyplan_aws_blueprint::prices::table();
        let as_of = table.as_of_for(region).to_string();
        match table.on_demand(region, instance_type) {
            Some(usd_per_hour) => Ok(Price { usd_per_hour, source: Source::Table { as_of, why } }),
            None => Err(format!(
                "{why}, and skyplan's price table (as of {as_of}) has no price for {instance_type} in {region}"
            )),
        }
    }

    /// The API's answer alone: `Ok(None)` when it knows no such product.
    pub(crate) async fn price_list(&self, region: &str, instance_type: &str) -> Result<Option<f64>, ApiError> {
        let filters = [
            term("instanceType", instance_type),
            term("regionCode", region),
            term("operatingSystem", "Linux"),
            term("tenancy", "Shared"),
            term("preInstalledSw", "NA"),
            term("capacitystatus", "Used"),
            term("licenseModel", "No License required"),
        ];
        let documents = self.products("AmazonEC2", &filters).await?;
        parse_price_list(&documents).map_err(unreadable)
    }

    /// The price of one charge besides instances in `region` (USD per hour,
    /// per GB-month for volumes), asked with [`SERVICE_QUERIES`]:
    /// `Ok(None)` when the API lists no such product there.
    pub(crate) async fn service_price(&self, region: &str, item: ServiceItem) -> Result<Option<f64>, ApiError> {
        let query = ServiceQuery::of(item);
        let mut filters: Vec<Filter> = query.filters.iter().map(|(f, v)| term(f, v)).collect();
        filters.push(term("regionCode", region));
        let documents = self.products(query.service_code, &filters).await?;
        parse_prices(&documents, query.unit, Some(query.usagetype_suffix)).map_err(unreadable)
    }

    /// Every product GetProducts lists for the filters, page after page.
    async fn products(&self, service_code: &str, filters: &[Filter]) -> Result<Vec<String>, ApiError> {
        let stats = RetryStats::default();
        let mut token: Option<String> = None;
        let mut documents = Vec::new();
        loop {
            let page = retry::run_counted(&self.retry, Retry::Standard, true, &stats, || {
                let request = self
                    .client
                    .get_products()
                    .service_code(service_code)
                    .format_version("aws_v1")
                    .set_filters(Some(filters.to_vec()))
                    .set_next_token(token.clone());
                async move {
                    request.send().await.map_err(|e| {
                        let mut err = ApiError::from_sdk("GetProducts", e);
                        err.service = Some("pricing");
                        match err.status {
                            None => err.endpoint = Some(self.endpoint.clone()),
                            // AWS answers errors with a code; an answer without
                            // one (the emulator's HTML 500 page) is an endpoint
                            // that has no Price List API. Said plainly, not as
                            // the SDK's account of the unreadable body.
                            Some(status) if err.code.is_none() => {
                                let endpoint = &self.endpoint;
                                err.message = format!(
                                    "{endpoint} answered HTTP {status} without an AWS error: \
                                     it does not serve the Price List API"
                                );
                            }
                            Some(_) => {}
                        }
                        err
                    })
                }
            })
            .await?;
            documents.extend(page.price_list().iter().cloned());
            token = page.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        Ok(documents)
    }
}

fn term(field: &str, value: &str) -> Filter {
    Filter::builder()
        .r#type(FilterType::TermMatch)
        .field(field)
        .value(value)
        .build()
        .expect("type, field and value are set")
}

/// An answer that is not the documented shape.
fn unreadable(message: String) -> ApiError {
    ApiError { service: Some("pricing"), ..ApiError::new("GetProducts", None, message, Some(200)) }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

/// The hourly USD price in GetProducts' `PriceList` (each entry a product
/// as a JSON string): every on-demand price dimension priced per hour
/// (`Hrs`). `Ok(None)` for an empty list; the lowest non-zero price when the
/// filters matched several products (AWS lists reserved-capacity variants
/// at $0). An entry that is not such a document is an error.
pub fn parse_price_list(documents: &[String]) -> Result<Option<f64>, String> {
    parse_prices(documents, "Hrs", None)
}

/// The price per `unit` in GetProducts' `PriceList`, of the products whose
/// `product.attributes.usagetype` ends with `usagetype_suffix` (any product
/// without one): the lowest non-zero on-demand price, `Ok(None)` when no
/// product and dimension match.
pub fn parse_prices(documents: &[String], unit: &str, usagetype_suffix: Option<&str>) -> Result<Option<f64>, String> {
    let mut best: Option<f64> = None;
    for text in documents {
        let doc: Value = serde_json::from_str(text).map_err(|e| format!("a PriceList entry is not JSON: {e}"))?;
        if let Some(suffix) = usagetype_suffix {
            let usagetype = doc.pointer("/product/attributes/usagetype").and_then(Value::as_str).unwrap_or_default();
            if !usagetype.ends_with(suffix) {
                continue;
            }
        }
        let offers = doc
            .pointer("/terms/OnDemand")
            .and_then(Value::as_object)
            .ok_or("a PriceList entry has no terms.OnDemand")?;
        for offer in offers.values() {
            let dimensions = offer.get("priceDimensions").and_then(Value::as_object).into_iter().flatten();
            for (_, dimension) in dimensions {
                if dimension.get("unit").and_then(Value::as_str) != Some(unit) {
                    continue;
                }
                let usd = dimension.pointer("/pricePerUnit/USD").and_then(Value::as_str).ok_or("a price has no USD")?;
                let usd: f64 = usd.parse().map_err(|_| format!("{usd:?} is not a price"))?;
                if usd > 0.0 && !matches!(best, Some(b) if b <= usd) {
                    best = Some(usd);
                }
            }
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One product as GetProducts lists it (abridged from a real answer:
    /// the fields the parser reads, in their real nesting).
    pub(crate) fn product(instance_type: &str, region: &str, usd: &str) -> String {
        serde_json::json!({
            "product": {
                "productFamily": "Compute Instance",
                "attributes": {"instanceType": instance_type, "regionCode": region, "operatingSystem": "Linux",
                               "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used"},
                "sku": "ABCDEF"
            },
            "serviceCode": "AmazonEC2",
            "terms": {"OnDemand": {"ABCDEF.JRTCKXETXF": {
                "priceDimensions": {"ABCDEF.JRTCKXETXF.6YS6EN2CT7": {
                    "unit": "Hrs", "description": format!("${usd} per On Demand Linux {instance_type} Instance Hour"),
                    "pricePerUnit": {"USD": usd}, "rateCode": "ABCDEF.JRTCKXETXF.6YS6EN2CT7"
                }},
                "sku": "ABCDEF", "effectiveDate": "2026-11-01T00:00:00Z", "offerTermCode": "JRTCKXETXF"
            }}},
            "version": "20261101000000", "publicationDate": "2026-11-01T00:00:00Z"
        })
        .to_string()
    }

    /// A Price List endpoint on 127.0.0.1: answers every GetProducts with
    /// `answer(request body)` in the real response shape (`PriceList` a list
    /// of JSON strings), and records the bodies it got.
    struct FakePriceList {
        url: String,
        bodies: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    }

    impl FakePriceList {
        fn start(answer: fn(&str) -> Vec<String>) -> FakePriceList {
            use std::io::{BufRead, BufReader, Read, Write};
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let seen = bodies.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(mut stream) = stream else { return };
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let (mut length, mut target) = (0usize, String::new());
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap();
                        }
                        if let Some(v) = lower.strip_prefix("x-amz-target:") {
                            target = v.trim().to_string();
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    let body = String::from_utf8(body).unwrap();
                    assert_eq!(target, "awspricelistservice.getproducts");
                    let out = serde_json::json!({"FormatVersion": "aws_v1", "PriceList": answer(&body)}).to_string();
                    seen.lock().unwrap().push(body);
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\r\n{out}",
                        out.len()
                    );
                }
            });
            FakePriceList { url, bodies }
        }
    }

    async fn client(endpoint: &str, region: &str) -> Pricing {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .endpoint_url(endpoint)
            .credentials_provider(aws_credential_types::Credentials::new("AKIDTEST", "secret", None, None, "test"))
            .load()
            .await;
        Pricing::new(&sdk)
    }

    #[tokio::test]
    async fn asks_the_price_list_api_with_the_linux_on_demand_filters() {
        let server = FakePriceList::start(|body| {
            if body.contains("\"eu-west-1\"") && body.contains("\"m5.xlarge\"") {
                vec![product("m5.xlarge", "eu-west-1", "0.2140000000")]
            } else {
                vec![]
            }
        });
        let pricing = client(&server.url, "eu-west-1").await;
        let price = pricing.on_demand("eu-west-1", "m5.xlarge").await.unwrap();
        assert_eq!(price, Price { usd_per_hour: 0.214, source: Source::PriceList });
        let body: Value = serde_json::from_str(&server.bodies.lock().unwrap()[0]).unwrap();
        assert_eq!(body["ServiceCode"], "AmazonEC2");
        for (field, value) in [
            ("instanceType", "m5.xlarge"),
            ("regionCode", "eu-west-1"),
            ("operatingSystem", "Linux"),
            ("tenancy", "Shared"),
            ("preInstalledSw", "NA"),
            ("capacitystatus", "Used"),
        ] {
            let filters = body["Filters"].as_array().unwrap();
            assert!(
                filters.iter().any(|f| f["Field"] == field && f["Value"] == value && f["Type"] == "TERM_MATCH"),
                "{field}={value} in {body}"
            );
        }

        // A product the API does not list: the table's price, saying why.
        let price = pricing.on_demand("us-east-1", "m5.large").await.unwrap();
        assert_eq!(price.usd_per_hour, 0.096);
        match price.source {
            Source::Table { as_of, why } => {
                assert_eq!(as_of, skyplan_aws_blueprint::prices::table().as_of_for("us-east-1"));
                assert!(why.contains("has no on-demand Linux price for m5.large in us-east-1"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        // Neither knows it: an error naming both.
        let e = pricing.on_demand("us-east-1", "no.such").await.unwrap_err();
        assert!(e.contains("Price List API has no") && e.contains("price table"), "{e}");
    }

    #[tokio::test]
    async fn an_unreachable_price_list_api_falls_back_to_the_table() {
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        let pricing = client(&closed, "us-east-1").await;
        let price = pricing.on_demand("us-east-1", "m5.xlarge").await.unwrap();
        assert_eq!(price.usd_per_hour, 0.192);
        let Source::Table { why, .. } = price.source else { panic!("{price:?}") };
        assert!(why.starts_with("the AWS Price List API could not be asked: pricing:GetProducts failed"), "{why}");
        assert!(why.contains(&closed), "names the endpoint: {why}");
        // The other charges: an error the caller falls back on.
        let e = pricing.service_price("us-east-1", ServiceItem::Gp3GbMonth).await.unwrap_err();
        assert!(e.to_string().contains(&closed), "{e}");
    }

    /// An endpoint without the Price List API (the emulator answers every
    /// GetProducts with an HTML 500 page): the table's price, and a reason
    /// a person can read, not the SDK's Debug form of the response.
    #[tokio::test]
    async fn an_endpoint_without_the_api_falls_back_saying_so_plainly() {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                }
                let _ = reader.read_exact(&mut vec![0; length]);
                let page = "<!doctype html>\n<title>500 Internal Server Error</title>\n";
                let _ = write!(
                    stream,
                    "HTTP/1.1 500 INTERNAL SERVER ERROR\r\nContent-Type: text/html\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{page}",
                    page.len()
                );
            }
        });
        let pricing = client(&url, "us-east-1").await;
        let price = pricing.on_demand("us-east-1", "m5.xlarge").await.unwrap();
        assert_eq!(price.usd_per_hour, 0.192);
        let Source::Table { why, .. } = price.source else { panic!("{price:?}") };
        assert_eq!(
            why,
            format!("{NOT_ASKED}: GetProducts failed: {url} answered HTTP 500 without an AWS error: it does not serve the Price List API")
        );
    }

    /// One product of another offer as GetProducts lists it (abridged from
    /// real answers: the fields the parser reads, in their real nesting).
    pub(crate) fn service_product(code: &str, family: &str, usagetype: &str, unit: &str, usd: &str) -> String {
        serde_json::json!({
            "product": {
                "productFamily": family,
                "attributes": {"usagetype": usagetype, "regionCode": "eu-west-1", "servicecode": code},
                "sku": "SKU2"
            },
            "serviceCode": code,
            "terms": {"OnDemand": {"SKU2.JRTCKXETXF": {
                "priceDimensions": {"SKU2.JRTCKXETXF.6YS6EN2CT7": {
                    "unit": unit, "description": format!("${usd} per {unit} of {usagetype}"),
                    "pricePerUnit": {"USD": usd}, "beginRange": "0", "endRange": "Inf"
                }},
                "sku": "SKU2", "effectiveDate": "2026-11-01T00:00:00Z", "offerTermCode": "JRTCKXETXF"
            }}},
            "version": "20261101000000", "publicationDate": "2026-11-01T00:00:00Z"
        })
        .to_string()
    }

    /// What a Price List endpoint lists for each charge's query in
    /// eu-west-1: the charge beside its neighbours of the same offer (the
    /// per-GB ones, the idle address, an endpoint), which must not be taken.
    fn eu_west_1(body: &str) -> Vec<String> {
        let body: Value = serde_json::from_str(body).unwrap();
        let filter = |field: &str| {
            body["Filters"].as_array().unwrap().iter().find(|f| f["Field"] == field).map(|f| f["Value"].clone())
        };
        if filter("regionCode") != Some("eu-west-1".into()) {
            return vec![];
        }
        let family = filter("productFamily").and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        match (body["ServiceCode"].as_str().unwrap(), family.as_str()) {
            ("AmazonEC2", "NAT Gateway") => vec![
                service_product("AmazonEC2", "NAT Gateway", "EU-NatGateway-Bytes", "GB", "0.0480000000"),
                service_product("AmazonEC2", "NAT Gateway", "EU-NatGateway-Hours", "Hrs", "0.0480000000"),
            ],
            ("AWSELB", "Load Balancer") => vec![
                service_product("AWSELB", "Load Balancer", "EU-DataProcessing-Bytes", "GB", "0.0080000000"),
                service_product("AWSELB", "Load Balancer", "EU-LoadBalancerUsage", "Hrs", "0.0280000000"),
            ],
            ("AmazonVPC", "") => vec![
                service_product("AmazonVPC", "VpcEndpoint", "EU-VpcEndpoint-Hours", "Hrs", "0.0110000000"),
                service_product("AmazonVPC", "", "EU-PublicIPv4:IdleAddress", "Hrs", "0.0050000000"),
                service_product("AmazonVPC", "", "EU-PublicIPv4:InUseAddress", "Hrs", "0.0050000000"),
            ],
            ("AmazonEC2", "Storage") if filter("volumeApiName") == Some("gp3".into()) => {
                vec![service_product("AmazonEC2", "Storage", "EU-EBS:VolumeUsage.gp3", "GB-Mo", "0.0880000000")]
            }
            _ => vec![],
        }
    }

    #[tokio::test]
    async fn asks_each_other_charge_with_its_recorded_query() {
        let server = FakePriceList::start(eu_west_1);
        let pricing = client(&server.url, "eu-west-1").await;
        let mut got = Vec::new();
        for item in ServiceItem::ALL {
            got.push(pricing.service_price("eu-west-1", item).await.unwrap());
        }
        assert_eq!(got, [Some(0.048), Some(0.028), Some(0.005), Some(0.088)]);
        let bodies: Vec<Value> =
            server.bodies.lock().unwrap().iter().map(|b| serde_json::from_str(b).unwrap()).collect();
        assert_eq!(bodies.len(), 4);
        for (body, query) in bodies.iter().zip(SERVICE_QUERIES) {
            assert_eq!(body["ServiceCode"], query.service_code);
            let filters = body["Filters"].as_array().unwrap();
            assert_eq!(filters.len(), query.filters.len() + 1, "{body}");
            for (field, value) in query.filters.iter().chain([&("regionCode", "eu-west-1")]) {
                assert!(
                    filters.iter().any(|f| f["Field"] == *field && f["Value"] == *value && f["Type"] == "TERM_MATCH"),
                    "{field}={value} in {body}"
                );
            }
        }
        // A region the API lists nothing for: no price, not an error.
        assert_eq!(pricing.service_price("af-south-1", ServiceItem::NatGatewayHour).await.unwrap(), None);
    }

    #[test]
    fn reads_the_hourly_price_from_json_strings() {
        assert_eq!(parse_price_list(&[product("m5.xlarge", "eu-west-1", "0.2140000000")]), Ok(Some(0.214)));
        assert_eq!(parse_price_list(&[]), Ok(None));
        // A $0 variant beside the real price: the real one.
        let two = [product("m5.xlarge", "eu-west-1", "0.0000000000"), product("m5.xlarge", "eu-west-1", "0.214")];
        assert_eq!(parse_price_list(&two), Ok(Some(0.214)));
        assert!(parse_price_list(&["{not json".to_string()]).unwrap_err().contains("not JSON"));
        assert!(parse_price_list(&["{}".to_string()]).unwrap_err().contains("terms.OnDemand"));
    }
}
