//! SASL/GSSAPI (Kerberos V5, RFC 4752) through the system's MIT `libgssapi_krb5`.
//!
//! Credentials: a keytab and principal (`sasl.jaas.config` with Java's `Krb5LoginModule`
//! options `useKeyTab=true keyTab="..." principal="..."`), acquired with MIT's credential
//! store (`gss_acquire_cred_from`, `client_keytab` + a private in-memory ccache, so the
//! user's own ticket cache is never touched), or the ticket cache (`kinit`; `KRB5CCNAME`).
//! The service principal is `<sasl.kerberos.service.name>/<broker host>` (default `kafka`).
//!
//! Why not rsasl's GSSAPI: rsasl 2.3 always acquires the default credentials (no keytab or
//! principal), and requests every context flag, delegation included, which would forward a
//! forwardable TGT to the broker. The exchange here is the one Java's `GssKrb5Client` does:
//! mutual authentication, then the RFC 4752 §3.1 security-layer step (no layer, as Kafka's
//! JDK server offers QOP `auth`).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use libgssapi::context::{ClientCtx, CtxFlags, SecurityContext};
use libgssapi::credential::{Cred, CredUsage};
use libgssapi::error::{Error as GssError, MajorFlags};
use libgssapi::name::Name;
use libgssapi::oid::{GSS_MECH_KRB5, GSS_NT_HOSTBASED_SERVICE};

use strom_protocol::ErrorCode;

use crate::error::{Error, Result};
use crate::security::jaas::JaasConfig;
use crate::security::mechanism::Step;

/// Kerberos settings of a client.
#[derive(Clone)]
pub(crate) struct KerberosSettings {
    service_name: String,
    principal: Option<String>,
    keytab: Option<PathBuf>,
    /// The private MIT ccache keytab logins go to (`MEMORY:strom-<pid>-<n>`).
    ccache: String,
}

impl fmt::Debug for KerberosSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kerberos")
            .field("service_name", &self.service_name)
            .field("principal", &self.principal)
            .field("keytab", &self.keytab)
            .finish()
    }
}

impl KerberosSettings {
    pub(crate) fn from_properties(props: &BTreeMap<String, String>, jaas: Option<&JaasConfig>) -> Result<Self> {
        let service_name = props
            .get("sasl.kerberos.service.name")
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .or_else(|| jaas.and_then(|j| j.get("serviceName")).map(str::to_owned))
            .unwrap_or_else(|| "kafka".to_owned());
        let principal = jaas.and_then(|j| j.get("principal")).map(str::to_owned);
        let use_keytab = match jaas {
            Some(j) => j.flag("useKeyTab", false)?,
            None => false,
        };
        let keytab = if use_keytab {
            let Some(path) = jaas.and_then(|j| j.get("keyTab")) else {
                return Err(Error::config(
                    "sasl.jaas.config: useKeyTab=true needs keyTab=\"/path/to/file.keytab\"",
                ));
            };
            let path = PathBuf::from(path);
            match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => {}
                Ok(_) => {
                    return Err(Error::config(format!(
                        "sasl.jaas.config: keyTab {} is not a file",
                        path.display()
                    )))
                }
                Err(e) => {
                    return Err(Error::config(format!(
                        "sasl.jaas.config: keyTab {} cannot be read: {e}",
                        path.display()
                    )))
                }
            }
            if principal.is_none() {
                return Err(Error::config(
                    "sasl.jaas.config: useKeyTab=true needs principal=\"name@REALM\"",
                ));
            }
            Some(path)
        } else {
            None
        };
        static N: AtomicU64 = AtomicU64::new(0);
        let ccache = format!(
            "MEMORY:strom-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        Ok(KerberosSettings {
            service_name,
            principal,
            keytab,
            ccache,
        })
    }

    /// " as <principal>" for messages.
    pub(crate) fn identity(&self) -> String {
        self.principal.as_ref().map(|p| format!(" as {p}")).unwrap_or_default()
    }

    /// Initiator credentials: from the keytab, else the ticket cache.
    fn credentials(&self) -> std::result::Result<Cred, GssError> {
        let krb5 = libgssapi::oid::OidSet::singleton(GSS_MECH_KRB5)?;
        match (&self.keytab, &self.principal) {
            (Some(keytab), Some(principal)) => acquire_from_keytab(principal, &keytab.to_string_lossy(), &self.ccache),
            (_, Some(principal)) => {
                let name = Name::new(principal.as_bytes(), Some(libgssapi::oid::GSS_NT_KRB5_PRINCIPAL))?;
                Cred::acquire(Some(&name), None, CredUsage::Initiate, Some(&krb5))
            }
            _ => Cred::acquire(None, None, CredUsage::Initiate, Some(&krb5)),
        }
    }
}

/// `gss_acquire_cred_from` with MIT's credential store: `client_keytab` and a private
/// `ccache`. (libgssapi has no safe wrapper for it.)
fn acquire_from_keytab(principal: &str, keytab: &str, ccache: &str) -> std::result::Result<Cred, GssError> {
    use libgssapi_sys as sys;
    let bad_name = GssError {
        major: MajorFlags::GSS_S_BAD_NAME,
        minor: 0,
    };
    let (Ok(keytab), Ok(ccache)) = (CString::new(keytab), CString::new(ccache)) else {
        return Err(bad_name);
    };
    // 1.2.840.113554.1.2.2.1: GSS_KRB5_NT_PRINCIPAL_NAME (RFC 1964).
    let mut principal_oid_bytes = *b"\x2a\x86\x48\x86\xf7\x12\x01\x02\x02\x01";
    let mut principal_oid = sys::gss_OID_desc_struct {
        length: principal_oid_bytes.len() as u32,
        elements: principal_oid_bytes.as_mut_ptr().cast(),
    };
    let mut name_bytes = principal.as_bytes().to_vec();
    let mut name_buf = sys::gss_buffer_desc_struct {
        length: name_bytes.len(),
        value: name_bytes.as_mut_ptr().cast(),
    };
    let mut elements = [
        sys::gss_key_value_element_desc {
            key: c"client_keytab".as_ptr(),
            value: keytab.as_ptr(),
        },
        sys::gss_key_value_element_desc {
            key: c"ccache".as_ptr(),
            value: ccache.as_ptr(),
        },
    ];
    let store = sys::gss_key_value_set_desc {
        count: elements.len() as u32,
        elements: elements.as_mut_ptr(),
    };
    let mut minor: sys::OM_uint32 = 0;
    let mut name: sys::gss_name_t = std::ptr::null_mut();
    // SAFETY: every pointer refers to a live local above (buffers, OID bytes, C strings,
    // store elements) that outlives the calls; gss_import_name copies what it needs; the name
    // it returns is released below on every path.
    let major = unsafe { sys::gss_import_name(&mut minor, &mut name_buf, &mut principal_oid, &mut name) };
    if major != sys::GSS_S_COMPLETE {
        return Err(GssError {
            major: MajorFlags::from_bits_retain(major),
            minor,
        });
    }
    let mut cred: sys::gss_cred_id_t = std::ptr::null_mut();
    // SAFETY: as above; `name` is a valid name from gss_import_name; a null mechanism set
    // means the default (Kerberos); the output pointers are valid locals.
    let major = unsafe {
        sys::gss_acquire_cred_from(
            &mut minor,
            name,
            0,
            std::ptr::null_mut(),
            sys::GSS_C_INITIATE as sys::gss_cred_usage_t,
            &store,
            &mut cred,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    let mut ignored: sys::OM_uint32 = 0;
    // SAFETY: `name` came from gss_import_name and is released exactly once.
    unsafe { sys::gss_release_name(&mut ignored, &mut name) };
    if major != sys::GSS_S_COMPLETE {
        return Err(GssError {
            major: MajorFlags::from_bits_retain(major),
            minor,
        });
    }
    // SAFETY: `cred` is a fresh credential we own; `Cred` releases it when dropped.
    Ok(unsafe { Cred::from_c(cred) })
}

#[derive(Debug)]
enum Phase {
    Context,
    SecurityLayer,
    Done,
}

/// One GSSAPI authentication (blocking calls: run off the async workers).
pub(crate) struct GssapiClient {
    ctx: ClientCtx,
    phase: Phase,
    target: String,
    identity: String,
}

impl fmt::Debug for GssapiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GssapiClient")
            .field("target", &self.target)
            .field("phase", &self.phase)
            .finish()
    }
}

/// Kerberos failures on the client side (no or expired keytab entry, unknown service
/// principal, KDC refusal) are configuration problems: fatal, with the GSS status text.
fn gss_err(what: &str, e: GssError) -> Error {
    Error::config(format!("GSSAPI: {what}: {e}"))
}

impl GssapiClient {
    /// Acquires credentials and prepares a context for `<service>@<host>`.
    pub(crate) fn new(settings: &KerberosSettings, host: &str) -> Result<GssapiClient> {
        let who = settings.identity();
        let cred = settings.credentials().map_err(|e| {
            let source = match &settings.keytab {
                Some(k) => format!("from keytab {}", k.display()),
                None => "from the ticket cache (run kinit, or use a keytab)".to_owned(),
            };
            gss_err(&format!("cannot get Kerberos credentials{who} {source}"), e)
        })?;
        let target = format!("{}@{}", settings.service_name, host);
        let name = Name::new(target.as_bytes(), Some(GSS_NT_HOSTBASED_SERVICE))
            .map_err(|e| gss_err(&format!("bad service name {target}"), e))?;
        let flags = CtxFlags::GSS_C_MUTUAL_FLAG | CtxFlags::GSS_C_INTEG_FLAG | CtxFlags::GSS_C_CONF_FLAG;
        Ok(GssapiClient {
            ctx: ClientCtx::new(Some(cred), name, flags, Some(GSS_MECH_KRB5)),
            phase: Phase::Context,
            target,
            identity: who,
        })
    }

    pub(crate) fn step(&mut self, input: Option<&[u8]>) -> Result<Step> {
        match self.phase {
            Phase::Context => {
                let token = self.ctx.step(input, None).map_err(|e| {
                    gss_err(
                        &format!("cannot authenticate{} to service {}", self.identity, self.target),
                        e,
                    )
                })?;
                let out = token.map(|t| t.to_vec()).unwrap_or_default();
                if self.ctx.is_complete() {
                    self.phase = Phase::SecurityLayer;
                }
                Ok(Step::Send(out))
            }
            Phase::SecurityLayer => {
                // RFC 4752 §3.1: the server offers layers and a max buffer size; we take "no
                // security layer" (Kafka's JDK server offers QOP auth only) and send it back
                // wrapped, with no authorization id.
                let input = input.unwrap_or_default();
                let offer = self
                    .ctx
                    .unwrap(input)
                    .map_err(|e| gss_err("cannot unwrap the security-layer offer", e))?;
                if offer.len() != 4 || offer[0] & 0x01 == 0 {
                    return Err(Error::kafka(ErrorCode::SaslAuthenticationFailed).with_context(format!(
                        "GSSAPI: service {} does not offer \"no security layer\" (RFC 4752)",
                        self.target
                    )));
                }
                let reply = self
                    .ctx
                    .wrap(false, &[0x01, 0, 0, 0])
                    .map_err(|e| gss_err("cannot wrap the security-layer reply", e))?;
                self.phase = Phase::Done;
                Ok(Step::SendLast(reply.to_vec()))
            }
            Phase::Done => Ok(Step::Done),
        }
    }
}
