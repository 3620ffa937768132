//! `kubectl ippool webhook manifest`: the admission webhook's complete manifests on stdout.

use clap::{Args, Subcommand};
use webhook_manifest::{self as manifest, DEFAULT_NAMESPACE, Options};

use super::Outcome;

#[derive(Debug, Args)]
pub struct WebhookArgs {
    #[command(subcommand)]
    pub command: WebhookCommand,
}

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Print the manifests that install the admission webhook: Namespace, least-privilege RBAC,
    /// Deployment (host network, 2 replicas), PodDisruptionBudget, Service and
    /// ValidatingWebhookConfiguration. By default with a freshly generated CA and serving
    /// certificate (a Secret, and the CA as caBundle); with --cert-manager, cert-manager issues
    /// them and injects the CA. Apply with `kubectl apply -f -`.
    Manifest(ManifestArgs),
}

#[derive(Debug, Args)]
pub struct ManifestArgs {
    /// Namespace for the webhook's objects.
    #[arg(long, short = 'n', default_value = DEFAULT_NAMESPACE, value_name = "NS")]
    pub namespace: String,
    /// Let cert-manager (installed separately) issue the certificates instead of generating them now.
    #[arg(long)]
    pub cert_manager: bool,
    /// The webhook image (built from admission-webhook/Containerfile and pushed to a registry the
    /// nodes can pull from).
    #[arg(long, value_name = "IMAGE", default_value_t = manifest::default_image())]
    pub image: String,
}

pub fn run(args: &WebhookArgs) -> anyhow::Result<Outcome> {
    match &args.command {
        WebhookCommand::Manifest(manifest_args) => {
            print!("{}", render(manifest_args)?);
            Ok(Outcome::Clean)
        }
    }
}

fn render(args: &ManifestArgs) -> anyhow::Result<String> {
    let options = if args.cert_manager {
        Options::cert_manager(&args.namespace, &args.image)
    } else {
        Options::self_signed(&args.namespace, &args.image)?
    };
    Ok(manifest::render(&options)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(cert_manager: bool, namespace: &str) -> ManifestArgs {
        ManifestArgs {
            namespace: namespace.to_owned(),
            cert_manager,
            image: "registry.example/ippool-webhook:1".to_owned(),
        }
    }

    #[test]
    fn self_signed_manifests_carry_a_fresh_ca_each_time() {
        let one = render(&args(false, "pools")).unwrap();
        let two = render(&args(false, "pools")).unwrap();
        assert!(one.contains("caBundle: "));
        assert!(one.contains("kind: Secret"));
        assert!(one.contains("namespace: pools"));
        assert!(one.contains("image: registry.example/ippool-webhook:1"));
        assert_ne!(one, two, "a new CA per rendering");
    }

    #[test]
    fn cert_manager_manifests_have_no_private_key() {
        let text = render(&args(true, "ippool-system")).unwrap();
        assert!(
            text.contains("cert-manager.io/inject-ca-from: ippool-system/ippool-admission-webhook")
        );
        assert!(!text.contains("kind: Secret"));
        assert!(!text.contains("caBundle"));
    }

    #[test]
    fn a_bad_namespace_is_an_error_naming_it() {
        let err = render(&args(false, "Bad_NS")).unwrap_err();
        assert!(err.to_string().contains("Bad_NS"), "{err}");
    }
}
