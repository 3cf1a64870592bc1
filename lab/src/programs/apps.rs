//! Application deployment (`lab/PROTOCOL.md`, "Applications"): `msiexec /i <msi> /qn
//! TARGETDIR=<dir>` installs a package's assemblies into the server's GAC (which PowerShell
//! reads and writes too, [`super::powershell::gac`]), `BTSTask ImportApp /Package:<msi>
//! /ApplicationName:<app> /Overwrite` records an application in the group (reading the group's
//! database as the session's user: without network credentials it fails, [`super::hop`]).
//!
//! The lab's `.msi` files are JSON manifests ([`Package`]), a lab convention plugins never read.

use serde::Deserialize;

use super::{Ctx, Output};
use crate::state::{Application, Assembly, Product};

/// A lab package: what `msiexec` installs.
#[derive(Debug, Deserialize)]
pub struct Package {
    /// The product name (Add/Remove Programs).
    pub product: String,
    /// The assemblies it puts in the GAC.
    pub assemblies: Vec<Assembly>,
}

/// Reads the package at `path` on the server.
fn package(ctx: &Ctx<'_>, path: &str) -> Option<Package> {
    serde_json::from_slice(ctx.this().file(path)?).ok()
}

/// `msiexec /i <msi> /qn TARGETDIR=<dir>`.
pub fn msiexec(ctx: &mut Ctx<'_>, args: &[String]) -> Option<Output> {
    let [i, path, qn, target] = args else { return None };
    let dir = target.strip_prefix("TARGETDIR=")?;
    if i != "/i" || qn != "/qn" {
        return None;
    }
    // ERROR_INSTALL_PACKAGE_OPEN_FAILED: the package could not be opened.
    let Some(package) = package(ctx, path) else { return Some(Output::stdout(1619, "")) };
    let dir = dir.trim_matches('"').to_owned();
    let server = ctx.this_mut();
    for assembly in package.assemblies {
        if !server.gac.contains(&assembly) {
            server.gac.push(assembly);
        }
    }
    server.products.retain(|p| !p.name.eq_ignore_ascii_case(&package.product));
    server.products.push(Product { name: package.product, target_dir: Some(dir) });
    Some(Output::ok(""))
}

const BTSTASK_BANNER: &str = concat!(
    "Microsoft (R) BizTalk Application Deployment Utility Version 3.13.717.0\n",
    "Copyright (c) 2020 Microsoft Corporation.  All rights reserved.\n",
    "\n",
);

/// `BTSTask ImportApp /Package:<msi> /ApplicationName:<app> /Overwrite`.
pub fn btstask(ctx: &mut Ctx<'_>, args: &[String]) -> Option<Output> {
    let [import, package_arg, app_arg, overwrite] = args else { return None };
    let path = package_arg.strip_prefix("/Package:")?;
    let app = app_arg.strip_prefix("/ApplicationName:")?;
    if import != "ImportApp" || overwrite != "/Overwrite" || path.is_empty() || app.is_empty() {
        return None;
    }
    let group = &ctx.lab.group;
    let (server, db) = (group.mgmt_server.clone(), group.mgmt_db.clone());
    let failure = if !ctx.lab.is_configured(&ctx.server) {
        Some("This computer is not joined to a BizTalk group.".to_owned())
    } else if let Err(refused) = ctx.connect_sql(&server) {
        Some(format!(
            "Failed to connect to the BizTalk configuration database \
             (server=\"{server}\", database=\"{db}\"): {refused}"
        ))
    } else if package(ctx, path).is_none() {
        Some(format!("Could not open the package \"{path}\"."))
    } else {
        None
    };
    if let Some(message) = failure {
        return Some(Output::stdout(
            1,
            format!("{BTSTASK_BANNER}Error: {message}\n\nCommand failed with 1 errors, 0 warnings.\n"),
        ));
    }
    let applications = &mut ctx.lab.group.applications;
    applications.retain(|a| !a.name.eq_ignore_ascii_case(app));
    applications.push(Application { name: app.to_owned(), package: path.to_owned() });
    Some(Output::ok(format!(
        "{BTSTASK_BANNER}Information: Importing package \"{path}\" into application \"{app}\" \
         in BizTalk configuration database (server=\"{server}\", database=\"{db}\")...\n\
         \n\
         Command succeeded with 0 errors, 0 warnings.\n"
    )))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{exec, exec_without_credentials};
    use crate::init::{STAGED_MSI, fresh_lab};
    use crate::state::Fault;

    #[test]
    fn msiexec_installs_the_package_once() {
        let mut lab = fresh_lab();
        let msi = ["msiexec", "/i", STAGED_MSI, "/qn", r"TARGETDIR=C:\Apps\Contoso"];
        let out = exec(&mut lab, "DRBTS01", &msi);
        assert_eq!((out.code, out.stdout_text(), out.stderr_text()), (0, String::new(), String::new()));
        assert_eq!(lab.servers["DRBTS01"].gac.len(), 2);
        // Installing twice keeps one copy.
        exec(&mut lab, "DRBTS01", &msi);
        assert_eq!(lab.servers["DRBTS01"].gac.len(), 2);
        assert_eq!(lab.servers["DRBTS01"].products.iter().filter(|p| p.name == "Contoso.Orders").count(), 1);
        assert!(lab.servers["DRBTS02"].gac.is_empty());
    }

    #[test]
    fn msiexec_of_an_unknown_package_exits_1619() {
        let mut lab = fresh_lab();
        let out =
            exec(&mut lab, "DRBTS01", &["msiexec", "/i", r"C:\Staging\Nope.msi", "/qn", "TARGETDIR=C:\\x"]);
        assert_eq!((out.code, out.stdout_text(), out.stderr_text()), (1619, String::new(), String::new()));
        assert_eq!(exec(&mut lab, "DRBTS01", &["msiexec", "/i", STAGED_MSI, "/quiet"]).code, 9009);
        assert_eq!(
            exec(&mut lab, "DRBTS01", &["msiexec", "/i", STAGED_MSI, "/qn", "INSTALLDIR=C:\\x"]).code,
            9009
        );
    }

    #[test]
    fn btstask_imports_into_the_group() {
        let mut lab = fresh_lab();
        lab.servers.get_mut("PRDBTS01").expect("PRDBTS01").write_file(
            r"C:\Deploy\Contoso.Orders.msi",
            b"{\"product\":\"Contoso.Orders\",\"assemblies\":[]}".to_vec(),
        );
        let argv = [
            "BTSTask",
            "ImportApp",
            r"/Package:C:\Deploy\Contoso.Orders.msi",
            "/ApplicationName:Contoso.Orders",
            "/Overwrite",
        ];
        let out = exec(&mut lab, "PRDBTS01", &argv);
        assert_eq!(out.code, 0);
        assert!(out.stdout_text().ends_with("\nCommand succeeded with 0 errors, 0 warnings.\n"));
        assert_eq!(lab.group.applications.len(), 1);
        assert_eq!(exec(&mut lab, "PRDBTS01", &argv).code, 0);
        assert_eq!(lab.group.applications.len(), 1, "overwritten");

        let out = exec(&mut lab, "DRBTS01", &argv);
        assert_eq!(out.code, 1);
        assert!(out.stdout_text().contains("Error: This computer is not joined to a BizTalk group.\n\nCommand failed with 1 errors, 0 warnings.\n"));
        lab.faults.push(Fault::SqlUnreachable { server: "PRDSQL01".into() });
        assert!(exec(&mut lab, "PRDBTS01", &argv).stdout_text().contains("Login timeout expired."));
        lab.faults.clear();
        let out = exec_without_credentials(&mut lab, "PRDBTS01", &argv, b"");
        assert_eq!(out.code, 1);
        assert!(out.stdout_text().contains(
            "Error: Failed to connect to the BizTalk configuration database (server=\"PRDSQL01\", \
             database=\"BizTalkMgmtDb\"): Login failed for user 'NT AUTHORITY\\ANONYMOUS LOGON'.\n"
        ));
        assert_eq!(exec(&mut lab, "PRDBTS01", &argv[..4]).code, 9009);
    }
}
