/* What the apiserver serves: the resource types (built-in ones and those
 * that CRDs define), and everything derived from them alone: discovery
 * documents, OpenAPI v3 documents and Table rendering (kubectl get).
 *
 * A CRD becomes a served type as soon as it is stored (Established at
 * once); deleting it removes the type. The core (server.c) asks the
 * registry "what is /apis/<g>/<v>/<plural>?" on every request. */
#ifndef AS_REGISTRY_H
#define AS_REGISTRY_H

#include <stdint.h>

#include <jansson.h>

#include "apiserver/schema.h"

struct as_registry;

struct as_resource {
    const char *group;          /* "" for core */
    const char *version;        /* "v1" */
    const char *resource;       /* plural: "deployments" */
    const char *singular;
    const char *kind;           /* "Deployment" */
    const char *list_kind;      /* "DeploymentList" */
    const char *gr;             /* store key prefix: "apps/deployments" */
    int namespaced;
    int builtin;                /* strategic merge patch applies */
    int has_status;             /* /status subresource */
    int has_scale;              /* /scale subresource */
    const char *scale_spec_path;     /* ".spec.replicas" */
    const char *scale_status_path;   /* ".status.replicas" */
    const char *scale_selector_path; /* ".status.selector" or NULL */
    const char *const *short_names;  /* NULL-terminated */
    const char *const *categories;
    const char *const *field_paths;  /* field selector paths supported */
    json_t *schema;             /* openAPIV3Schema (CRDs), NULL for built-ins */
    json_t *columns;            /* additionalPrinterColumns (CRDs) */
};

int as_registry_new(struct as_registry **out);
void as_registry_free(struct as_registry *reg);

/* Served type by group, version and plural; NULL when unknown. */
const struct as_resource *as_registry_find(const struct as_registry *reg, const char *group,
                                           const char *version, const char *resource);
/* Served type by apiVersion ("apps/v1", "v1") and kind; NULL when unknown. */
const struct as_resource *as_registry_find_kind(const struct as_registry *reg,
                                                const char *api_version, const char *kind);

/* Validates a CustomResourceDefinition object (names, scope, versions,
 * exactly one storage version, schemas via as_schema_check, no clash with
 * a served type). 0 or -EINVAL with causes. */
int as_registry_check_crd(const struct as_registry *reg, json_t *crd, struct as_causes *c);
/* Serves (or re-serves, after an update) the CRD's types: every served
 * version. The CRD must have passed as_registry_check_crd. Fills in the
 * CRD's status (conditions NamesAccepted and Established True,
 * acceptedNames, storedVersions) in place. */
int as_registry_add_crd(struct as_registry *reg, json_t *crd);
/* Stops serving the CRD named name ("<plural>.<group>"). */
void as_registry_remove_crd(struct as_registry *reg, const char *name);

/* The autoscaling/v1 Scale of obj, for GET/PUT/PATCH .../scale (res has
 * has_scale): metadata name, namespace, uid, resourceVersion and
 * creationTimestamp from obj; spec.replicas from scale_spec_path (left out
 * when 0, as the API's omitempty does); status.replicas from
 * scale_status_path (0 when missing); status.selector from
 * scale_selector_path: a string as is (CRDs), a LabelSelector object
 * (Deployments' .spec.selector) rendered as the real API does
 * ("app=web,tier in (a,b)"), left out when empty. A new reference; NULL
 * when res has no scale subresource or obj is not an object.
 * (Added by the registry's implementer; not in the lead's first contract.) */
json_t *as_registry_scale(const struct as_resource *res, json_t *obj);

/* Discovery, as new references: GET /api (APIVersions), GET /apis
 * (APIGroupList), GET /api/v1 and GET /apis/<g>/<v> (APIResourceList; NULL
 * when the group version is not served). */
json_t *as_discovery_api(const struct as_registry *reg);
json_t *as_discovery_apis(const struct as_registry *reg);
json_t *as_discovery_resources(const struct as_registry *reg, const char *group,
                               const char *version);

/* OpenAPI v3: the root ({"paths":{"api/v1":{"serverRelativeURL":...}}}) and
 * one group version's document (NULL when not served). The group documents
 * carry, per resource, a path whose patch operation has
 * x-kubernetes-group-version-kind and a fieldValidation parameter (so
 * kubectl leaves validation to the server) and the CRDs' schemas under
 * components.schemas. hash changes whenever the registry does. */
json_t *as_openapi_root(const struct as_registry *reg);
json_t *as_openapi_group_version(const struct as_registry *reg, const char *group,
                                 const char *version);

/* Table rendering (kubectl get): the column definitions for res, and one
 * row's cells for obj. Built-ins have kubectl's usual columns (pods: NAME
 * READY STATUS RESTARTS AGE; deployments: NAME READY UP-TO-DATE AVAILABLE
 * AGE; services: NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE; ...); CRDs
 * Name plus additionalPrinterColumns (jsonPath evaluated: simple dotted
 * paths and [N]), or Name and Age when none. now_s: the Unix time that
 * ages are computed against ("5s", "3m", "2d4h" as kubectl prints). */
json_t *as_table_columns(const struct as_resource *res);
json_t *as_table_cells(const struct as_resource *res, json_t *obj, int64_t now_s);

#endif
