//! Administrative commands: `portal migrate`, `portal shard upsert`, `portal tenant upsert`.
//! They need only the database and the secret key, not the identity provider.

use crate::config::Secret;
use crate::startup::{app_pool, migrate};
use app::data::secret::SecretBox;
use app::domain::tenant::{TenantCode, TenantSlug};
use base64::Engine;
use std::collections::HashMap;
use std::io::Read;

const USAGE: &str = "usage:
  portal [serve]                 run the portal (configuration from the environment)
  portal migrate                 apply database migrations (DATABASE_MIGRATION_URL or DATABASE_URL)
  portal shard upsert --cluster-id ID --name NAME --region REGION --login-server-url URL
                      --api-url URL --capacity N      (reads the shard's API key from stdin)
  portal tenant upsert --slug SLUG --code CODE --name NAME [--plan PLAN] [--region REGION] [--shard CLUSTER_ID]
  portal token issue --tenant SLUG --email EMAIL --role ROLE --name NAME [--days N]
  portal token issue --operator --email EMAIL --name NAME [--days N]
                      makes an API token for a member or an operator (printed once;
                      default 30 days)";

pub fn usage() -> &'static str {
    USAGE
}

fn flags(args: &[String]) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    let mut it = args.iter();
    while let Some(k) = it.next() {
        let key = k
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument {k:?}"))?;
        let value = it.next().ok_or_else(|| format!("--{key} needs a value"))?;
        out.insert(key.to_string(), value.clone());
    }
    Ok(out)
}

fn take(f: &mut HashMap<String, String>, key: &str) -> Result<String, String> {
    f.remove(key).ok_or_else(|| format!("--{key} is required"))
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("{name} is required"))
}

pub async fn run(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("migrate") => {
            let url = env("DATABASE_MIGRATION_URL").or_else(|_| env("DATABASE_URL"))?;
            migrate(&url).await.map_err(|e| e.to_string())?;
            println!("migrations applied");
            Ok(())
        }
        Some("shard") if args.get(1).map(String::as_str) == Some("upsert") => {
            shard_upsert(&args[2..]).await
        }
        Some("tenant") if args.get(1).map(String::as_str) == Some("upsert") => {
            tenant_upsert(&args[2..]).await
        }
        Some("token") if args.get(1).map(String::as_str) == Some("issue") => {
            token_issue(&args[2..]).await
        }
        _ => Err(USAGE.to_string()),
    }
}

async fn shard_upsert(args: &[String]) -> Result<(), String> {
    let mut f = flags(args)?;
    let shard = app::data::shards::NewShard {
        cluster_id: take(&mut f, "cluster-id")?,
        name: take(&mut f, "name")?,
        region: take(&mut f, "region")?,
        login_server_url: take(&mut f, "login-server-url")?,
        api_url: take(&mut f, "api-url")?,
        node_capacity: take(&mut f, "capacity")?
            .parse()
            .map_err(|_| "--capacity must be a whole number".to_string())?,
    };
    if let Some(k) = f.keys().next() {
        return Err(format!("unknown option --{k}"));
    }
    let mut api_key = String::new();
    std::io::stdin()
        .read_to_string(&mut api_key)
        .map_err(|e| format!("reading the API key from stdin: {e}"))?;
    let api_key = Secret::new(api_key.trim());
    if api_key.expose().is_empty() {
        return Err("pipe the shard's API key into stdin".into());
    }
    let key = base64::engine::general_purpose::STANDARD
        .decode(env("PORTAL_SECRET_KEY")?.trim())
        .map_err(|_| "PORTAL_SECRET_KEY must be base64".to_string())?;
    let secrets = SecretBox::new(&key).map_err(|e| e.to_string())?;
    let pool = app_pool(&env("DATABASE_URL")?, 2).map_err(|e| e.to_string())?;
    app::data::shards::upsert(&pool, &secrets, &shard, api_key.expose())
        .await
        .map_err(|e| format!("saving the shard failed: {e}"))?;
    println!("shard {} saved", shard.cluster_id);
    Ok(())
}

async fn tenant_upsert(args: &[String]) -> Result<(), String> {
    let mut f = flags(args)?;
    let slug = TenantSlug::parse(&take(&mut f, "slug")?)?;
    let code = TenantCode::parse(&take(&mut f, "code")?)?;
    let name = take(&mut f, "name")?;
    let plan = f.remove("plan").unwrap_or_else(|| "starter".into());
    let region = f.remove("region").unwrap_or_else(|| "local".into());
    let shard = f.remove("shard");
    if let Some(k) = f.keys().next() {
        return Err(format!("unknown option --{k}"));
    }
    let pool = app_pool(&env("DATABASE_URL")?, 2).map_err(|e| e.to_string())?;
    app::data::tenants::upsert(&pool, &slug, &code, &name, &plan, &region, shard.as_deref())
        .await
        .map_err(|e| format!("saving the tenant failed: {e}"))?;
    println!("tenant {slug} saved");
    Ok(())
}

async fn token_issue(args: &[String]) -> Result<(), String> {
    let operator = args.first().map(String::as_str) == Some("--operator");
    let mut f = flags(if operator { &args[1..] } else { args })?;
    let email = take(&mut f, "email")?;
    let name = take(&mut f, "name")?;
    let days = f.remove("days").unwrap_or_else(|| "30".into());
    let tenant = (!operator).then(|| take(&mut f, "tenant")).transpose()?;
    let role = (!operator).then(|| take(&mut f, "role")).transpose()?;
    if let Some(k) = f.keys().next() {
        return Err(format!("unknown option --{k}"));
    }
    let pool = app_pool(&env("DATABASE_URL")?, 2).map_err(|e| e.to_string())?;
    let made = match (&tenant, &role) {
        (Some(tenant), Some(role)) => {
            app::data::tokens::issue_for_member(&pool, tenant, &email, role, &name, &days).await?
        }
        _ => app::data::tokens::issue_for_operator(&pool, &email, &name, &days).await?,
    };
    // The token alone on stdout, so scripts can capture it.
    println!("{}", made.secret);
    eprintln!(
        "token {} ({}) for {email} in {}, role ceiling {}, expires {}",
        made.row.name,
        made.row.hint,
        tenant.as_deref().unwrap_or("the operator endpoints"),
        role.as_deref().unwrap_or("operator"),
        app::data::rfc3339(Some(made.row.expires_at)).unwrap_or_default()
    );
    Ok(())
}
