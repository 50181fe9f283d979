//! `#[service_interface(name = "...", base_path = "...", version = "...", crate = "...")]`.

use proc_macro2::{Span, TokenStream};
use syn::{meta::ParseNestedMeta, LitStr};

pub(crate) struct InterfaceArgs {
    pub(crate) name: LitStr,
    pub(crate) base_path: String,
    /// The path of the `sdk` crate (`::sdk`, or `crate = "my_sdk"` when renamed).
    pub(crate) krate: syn::Path,
    /// The instance versions the interface needs (`version = "^2"`), checked here.
    pub(crate) version: Option<LitStr>,
}

pub(crate) fn parse(args: TokenStream) -> syn::Result<InterfaceArgs> {
    let mut name = None;
    let mut base_path = String::new();
    let mut krate: syn::Path = syn::parse_quote!(::sdk);
    let mut version = None;
    let parser = syn::meta::parser(|meta: ParseNestedMeta<'_>| {
        if meta.path.is_ident("name") {
            let lit: LitStr = meta.value()?.parse()?;
            if lit.value().trim().is_empty() {
                return Err(syn::Error::new_spanned(
                    &lit,
                    "the service name cannot be empty",
                ));
            }
            name = Some(lit);
            Ok(())
        } else if meta.path.is_ident("base_path") {
            let lit: LitStr = meta.value()?.parse()?;
            let value = lit.value();
            if !value.is_empty()
                && (!value.starts_with('/') || value.contains(['<', '>', '?', '#']))
            {
                return Err(syn::Error::new_spanned(
                    &lit,
                    "base_path must start with `/` and hold no parameters, query or fragment",
                ));
            }
            base_path = value.trim_end_matches('/').to_owned();
            Ok(())
        } else if meta.path.is_ident("version") {
            let lit: LitStr = meta.value()?.parse()?;
            // The same parser the SDK uses at run time, so what compiles also parses there.
            if let Err(e) = semver::VersionReq::parse(lit.value().trim()) {
                return Err(syn::Error::new_spanned(
                    &lit,
                    format!(
                        "`{}` is not a version requirement ({e}); write e.g. \"^2\", \"~1.4\" or \">=1.2, <2\"",
                        lit.value()
                    ),
                ));
            }
            version = Some(lit);
            Ok(())
        } else if meta.path.is_ident("crate") {
            let lit: LitStr = meta.value()?.parse()?;
            krate = lit.parse().map_err(|_| {
                syn::Error::new_spanned(&lit, "`crate` takes a path, e.g. `crate = \"my_sdk\"`")
            })?;
            Ok(())
        } else {
            Err(meta.error("unknown key; #[service_interface] takes `name = \"...\"`, `base_path = \"...\"`, `version = \"...\"` and `crate = \"...\"`"))
        }
    });
    syn::parse::Parser::parse2(parser, args)?;
    let name = name.ok_or_else(|| {
        syn::Error::new(
            Span::call_site(),
            "missing the service name: write #[service_interface(name = \"user-service\")]",
        )
    })?;
    Ok(InterfaceArgs {
        name,
        base_path,
        krate,
        version,
    })
}
