//! The node's route table: every route is registered through [`Routes`], which records its method,
//! path and who may use it ([`Access`]) next to the handler. The authorization matrix test walks
//! [`table`], so a route cannot be added without saying who may call it, and the test then checks
//! that every kind of caller gets the answer that promise implies.
//!
//! The access is also what is enforced: `register` wraps each resource in the guard for its
//! access (`guard.rs`), which runs before the handler and its body extractors.
//!
//! A `GET` route also answers `HEAD` (same handler; actix sends the headers without the body), as
//! HTTP requires of every `GET` resource.

use actix_web::Resource;
use actix_web::http::Method;
use actix_web::{FromRequest, Handler, Responder, web};

/// Who may use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Anyone: opt-in, sign-in pages, health, the stylesheet.
    Public,
    /// A signed-in nurse (session cookie); others are sent to `/sign-in`.
    Nurse,
    /// A signed-in, enabled staff member (session cookie); others are sent to `/staff/sign-in`.
    Staff,
    /// A staff API token (`Authorization: Bearer`); others get 401 JSON.
    Api,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RouteInfo {
    #[serde(serialize_with = "method_name")]
    pub method: Method,
    /// The pattern as registered (`/staff/nurses/{id}`).
    pub path: &'static str,
    pub access: Access,
}

fn method_name<S: serde::Serializer>(m: &Method, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(m.as_str())
}

/// Collects routes by path (actix answers 405 when a path's first resource lacks the method, so
/// one path must be one resource) and records each in the table.
#[derive(Default)]
pub struct Routes {
    resources: Vec<(&'static str, Resource, Option<Access>)>,
    table: Vec<RouteInfo>,
}

impl Routes {
    fn resource(&mut self, path: &'static str) -> &mut Resource {
        let i = match self.resources.iter().position(|(p, _, _)| *p == path) {
            Some(i) => i,
            None => {
                self.resources.push((path, web::resource(path), None));
                self.resources.len() - 1
            }
        };
        &mut self.resources[i].1
    }

    /// One path, one guard: every method of a path must promise the same access.
    fn set_access(&mut self, path: &'static str, access: Access) {
        let entry = self.resources.iter_mut().find(|(p, _, _)| *p == path).expect("resource added first");
        match entry.2 {
            Some(earlier) if earlier != access => {
                panic!("{path}: one route is {earlier:?} and another {access:?}; give them separate paths")
            }
            _ => entry.2 = Some(access),
        }
    }

    fn add<F, Args>(&mut self, method: Method, path: &'static str, access: Access, handler: F)
    where
        F: Handler<Args> + Clone,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let methods: &[Method] =
            if method == Method::GET { &[Method::GET, Method::HEAD] } else { std::slice::from_ref(&method) };
        for m in methods {
            let resource = self.resource(path);
            let taken = std::mem::replace(resource, web::resource(path));
            *resource = taken.route(web::method(m.clone()).to(handler.clone()));
        }
        self.set_access(path, access);
        self.table.push(RouteInfo { method, path, access });
    }

    pub fn get<F, Args>(&mut self, path: &'static str, access: Access, handler: F) -> &mut Self
    where
        F: Handler<Args> + Clone,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(Method::GET, path, access, handler);
        self
    }

    pub fn post<F, Args>(&mut self, path: &'static str, access: Access, handler: F) -> &mut Self
    where
        F: Handler<Args> + Clone,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(Method::POST, path, access, handler);
        self
    }

    /// Adds extractor settings (body limits, JSON error answers) to one path's resource.
    pub fn data<U: 'static>(&mut self, path: &'static str, data: U) -> &mut Self {
        let resource = self.resource(path);
        let taken = std::mem::replace(resource, web::resource(path));
        *resource = taken.app_data(data);
        self
    }

    /// Registers every resource, each behind the guard its access names (see `guard.rs`).
    pub fn register(self, cfg: &mut web::ServiceConfig) {
        use actix_web::middleware::from_fn;
        for (_, resource, access) in self.resources {
            match access.unwrap_or(Access::Public) {
                Access::Public => cfg.service(resource),
                Access::Nurse => cfg.service(resource.wrap(from_fn(super::guard::nurse))),
                Access::Staff => cfg.service(resource.wrap(from_fn(super::guard::staff))),
                Access::Api => cfg.service(resource.wrap(from_fn(super::guard::api))),
            };
        }
    }
}

/// Every route of the node, as registered by [`super::configure`].
pub fn table() -> Vec<RouteInfo> {
    super::routes().table
}
