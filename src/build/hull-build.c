/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build.h"
#include "build-config.h"
#include "bundle.h"
#include "fileio.h"
#include "installer.h"
#include "log.h"
#include "oci-bundle.h"
#include "oci.h"
#include "fetch.h"
#include "sign.h"
#include "spec.h"
#include "strutil.h"

#ifndef HULL_LIBEXECDIR
#define HULL_LIBEXECDIR "/usr/libexec/hull"
#endif
#ifndef HULL_PROGRAMS_PATH
#define HULL_PROGRAMS_PATH HULL_LIBEXECDIR ":/usr/bin"
#endif
#ifndef HULL_DATADIR
#define HULL_DATADIR "/usr/share/hull"
#endif

static void help(void) {
        printf("hull-build — build Hull OS images and signed update bundles\n\n"
               "Usage:\n"
               "  hull-build build SPEC.yaml --key PRIVATE.pem [options]\n"
               "  hull-build keygen PRIVATE.pem PUBLIC.pem\n"
               "  hull-build sign --key NEW.pem --trust OLD.pub IN.hullb OUT.hullb\n"
               "  hull-build verify --trust PUBLIC.pem|--keyring DIR BUNDLE.hullb\n"
               "  hull-build push BUNDLE.hullb HOST[:PORT]/REPO[:TAG] [--auth FILE] [--ca FILE]\n"
               "             [--chunk-size SIZE] [--plain-http]   publish to an OCI registry (docs/OCI.md)\n"
               "  hull-build config INPUT.yaml [-o OUT.json]   provisioning config (docs/PROVISION.md)\n"
               "  hull-build config --check FILE.json\n"
               "  hull-build installer --image OUT/NAME-VER.img [--config MACHINE.json] [-o DIR]\n"
               "             [--disk auto|/dev/NAME] [--root-size SIZE|max] [--persist-min SIZE] [--force]\n"
               "                         EFI installer ISO and PXE files (docs/INSTALL.md)\n\n"
               "Build options:\n"
               "  -o, --output DIR       where images go (default: ./out)\n"
               "      --cache DIR        bootstrap cache (default: /var/cache/hull-build)\n"
               "      --no-cache         ignore and do not fill the cache\n"
               "      --trust PUBLIC.pem also trust this key for updates on the node (repeatable)\n"
               "      --keep-work        keep the work directory for inspection\n"
               "      --stop-after STAGE stop after stage packages, customise or seal and keep\n"
               "                         the work directory (no image is written)\n"
               "      --programs-dir DIRS where hull-init, hull-agent and hullctl are taken from\n"
               "                         (':'-separated)\n"
               "      --data-dir DIR     Hull's data files (initramfs scripts, units)\n"
               "  -v, --verbose          debug output\n"
               "  -h, --help             this help\n"
               "      --version          print the version\n\n"
               "See hull-build(1) and docs/SPEC.md.\n");
}

static const char *arg_output = "out";
static const char *arg_cache = "/var/cache/hull-build";
static const char *arg_key = NULL;
static char **arg_trust = NULL;
static const char *arg_keyring = NULL;
static const char *arg_programs_dir = NULL;
static const char *arg_data_dir = NULL;
/* hull-build installer */
static InstallerOptions arg_installer = {};
static bool arg_no_cache = false;
static bool arg_keep_work = false;
static const char *arg_stop_after = NULL;
static bool arg_output_set = false;
static bool arg_check = false;
/* hull-build push */
static const char *arg_auth = NULL;
static const char *arg_ca = NULL;
static bool arg_plain_http = false;
static uint64_t arg_chunk_size = OCI_CHUNK_SIZE_DEFAULT;

static const char *pick_dir(const char *arg, const char *installed, const char *build_tree, const char *probe) {
        if (arg)
                return arg;
        _cleanup_free_ char *p = path_join(installed, probe);
        if (p && access(p, F_OK) == 0)
                return installed;
        return build_tree;
}

static int cmd_keygen(int argc, char **argv) {
        _cleanup_(key_freep) HullKey *k = NULL;
        int r;

        if (argc != 2)
                return log_error_errno(EINVAL, "Usage: hull-build keygen PRIVATE.pem PUBLIC.pem");
        r = key_generate(&k);
        if (r < 0)
                return log_error_errno(r, "Failed to generate a key: %m");
        r = key_save_private(k, argv[0]);
        if (r == -EEXIST)
                return log_error_errno(r, "'%s' exists already; refusing to overwrite a private key", argv[0]);
        if (r < 0)
                return log_error_errno(r, "Failed to write '%s': %m", argv[0]);
        r = key_save_public(k, argv[1]);
        if (r < 0) {
                (void) unlink(argv[0]);
                return log_error_errno(r, "Failed to write '%s': %m", argv[1]);
        }
        printf("key id %s\n  private: %s (keep it off the nodes and out of git)\n  public:  %s\n", key_id(k), argv[0], argv[1]);
        return 0;
}

static int load_trust(Keyring **ret) {
        _cleanup_(keyring_freep) Keyring *kr = NULL;
        int r;

        if (arg_keyring) {
                r = keyring_load_dir(arg_keyring, &kr);
                if (r < 0)
                        return log_error_errno(r, "Failed to load keys from '%s': %m", arg_keyring);
        } else {
                r = keyring_new(&kr);
                if (r < 0)
                        return r;
        }
        for (char **t = arg_trust; t && *t; t++) {
                HullKey *k = NULL;
                r = key_load_public(*t, &k);
                if (r < 0)
                        return log_error_errno(r, "Failed to load public key '%s': %m", *t);
                r = keyring_add(kr, k);
                if (r < 0) {
                        key_free(k);
                        return r;
                }
        }
        if (keyring_size(kr) == 0)
                return log_error_errno(ENOKEY, "No trusted keys: pass --trust PUBLIC.pem or --keyring DIR");
        *ret = TAKE_PTR(kr);
        return 0;
}

/* payload: whether the error came from hashing payloads (after the header,
 * signature and manifest were accepted). */
static const char *bundle_error_phase(int r, bool payload) {
        if (payload && r == -EBADMSG)
                return "a payload does not match the SHA-256 in the signed manifest: the bundle was modified or corrupted";
        if (!payload && r == -EBADMSG)
                return "it is not a valid Hull bundle (bad header or manifest)";
        switch (-r) {
        case ENOKEY:
                return "it is signed by a key that is not trusted";
        case EKEYREJECTED:
                return "the signature does not match: the bundle was modified or the signature is bad";
        case ENODATA:
                return "it is truncated";
        case EPROTONOSUPPORT:
                return "its format version is not supported by this hull-build";
        default:
                return strerror(-r);
        }
}

static const char *bundle_error(int r) {
        return bundle_error_phase(r, false);
}

static int cmd_verify(int argc, char **argv) {
        _cleanup_(keyring_freep) Keyring *kr = NULL;
        _cleanup_(bundle_freep) Bundle *b = NULL;
        int r;

        if (argc != 1)
                return log_error_errno(EINVAL, "Usage: hull-build verify --trust PUBLIC.pem BUNDLE.hullb");
        r = load_trust(&kr);
        if (r < 0)
                return r;
        r = bundle_open(argv[0], kr, &b);
        if (r < 0)
                return log_error_errno(r, "Bundle '%s' rejected: %s", argv[0], bundle_error(r));
        r = bundle_verify_payloads(b, NULL, NULL);
        if (r < 0)
                return log_error_errno(r, "Bundle '%s' rejected: %s", argv[0], bundle_error_phase(r, true));

        const Manifest *m = bundle_manifest(b);
        printf("%s: OK\n  image:   %s %s (%s)\n  rootfs:  %s%s\n  key id:  %s\n  created: %s\n", argv[0], m->name,
               m->version, m->arch, m->rootfs_type, m->verity_root_hash ? " with dm-verity" : "", m->key_id, m->created);
        if (!components_is_empty(&m->components)) {
                printf("  components:");
                for (Component k = 0; k < _COMPONENT_MAX; k++)
                        if (m->components.version[k])
                                printf(" %s %s", component_to_string(k), m->components.version[k]);
                printf("\n");
        }
        for (size_t i = 0; i < m->n_payloads; i++) {
                char sz[32], hex[65];
                hex_encode(m->payloads[i].sha256, 32, hex);
                printf("  payload %-7s %10s  sha256:%s\n", m->payloads[i].name,
                       format_bytes(sz, sizeof(sz), m->payloads[i].size), hex);
        }
        return 0;
}

static void push_progress(const char *what, const char *digest, uint64_t size, bool existed, void *userdata) {
        char sz[32];
        printf("%-9s %s %10s  %s\n", existed ? "exists" : "uploaded", digest, format_bytes(sz, sizeof(sz), size), what);
        fflush(stdout);
}

static int cmd_push(int argc, char **argv) {
        _cleanup_(oci_client_freep) OciClient *c = NULL;
        _cleanup_free_ char *auth = NULL, *err = NULL, *pinned = NULL;
        _cleanup_(oci_ref_done) OciRef ref = {};
        char digest[OCI_DIGEST_SIZE];
        int r;

        if (argc != 2)
                return log_error_errno(EINVAL, "Usage: hull-build push BUNDLE.hullb HOST[:PORT]/REPO[:TAG] [--auth FILE] [--ca FILE]");
        r = oci_ref_parse(oci_url_is_oci(argv[1]) ? argv[1] + strlen(OCI_URL_PREFIX) : argv[1], &ref, &err);
        if (r < 0)
                return log_error_errno(r, "%s", err);
        if (!ref.tag && !ref.digest)
                return log_error_errno(EINVAL, "Image reference '%s' needs a tag (or a digest) to push to", argv[1]);
        if (ref.tag && ref.digest)
                return log_error_errno(EINVAL, "Image reference '%s' has both a tag and a digest: push under one of them",
                                       argv[1]);
        if (arg_auth)
                auth = strdup(arg_auth);
        else if (oci_auth_default_path(&auth) < 0)
                return log_oom();
        if (arg_auth && !auth)
                return log_oom();
        if (arg_auth && access(arg_auth, R_OK) < 0)
                return log_error_errno(errno, "Cannot read the registry credentials file '%s': %m", arg_auth);
        r = fetch_global_init();
        if (r < 0)
                return log_error_errno(r, "Cannot initialise libcurl");
        OciClientOptions o = { .auth_file = auth, .ca_file = arg_ca, .plain_http = arg_plain_http };
        r = oci_client_new(ref.registry, ref.repository, &o, &c, &err);
        if (r < 0)
                return log_error_errno(r, "%s", err ?: "Cannot set up the registry client");
        if (auth)
                log_debug("Registry credentials from %s", auth);
        r = oci_bundle_push(c, argv[0], ref.tag ?: ref.digest, arg_chunk_size, push_progress, NULL, digest, &err);
        if (r < 0)
                return log_error_errno(r, "Pushing '%s' failed: %s", argv[0], err ?: strerror(-r));
        if (ref.digest && !streq(ref.digest, digest))
                return log_error_errno(EINVAL, "Pushed as %s, not as %s", digest, ref.digest);
        free(ref.digest);
        ref.digest = strdup(digest);
        if (!ref.digest || oci_ref_format(&ref, true, &pinned) < 0)
                return log_oom();
        printf("pinned: %s%s\n", OCI_URL_PREFIX, pinned);
        printf("%s\n", digest);
        return 0;
}

static int cmd_sign(int argc, char **argv) {
        _cleanup_(keyring_freep) Keyring *kr = NULL;
        _cleanup_(bundle_freep) Bundle *b = NULL;
        _cleanup_(key_freep) HullKey *key = NULL;
        _cleanup_(manifest_freep) Manifest *m = NULL;
        char tmpdir[] = "/var/tmp/hull-sign-XXXXXX";
        int r;

        if (argc != 2 || !arg_key)
                return log_error_errno(EINVAL, "Usage: hull-build sign --key NEW.pem --trust OLD.pub IN.hullb OUT.hullb");
        r = key_load_private(arg_key, &key);
        if (r < 0)
                return log_error_errno(r, "Failed to load private key '%s': %m", arg_key);
        r = load_trust(&kr);
        if (r < 0)
                return r;
        /* Only a bundle whose current signature and payloads check out is
         * re-signed: signing must never launder a modified bundle. */
        r = bundle_open(argv[0], kr, &b);
        if (r < 0)
                return log_error_errno(r, "Bundle '%s' rejected: %s", argv[0], bundle_error(r));
        if (!mkdtemp(tmpdir))
                return log_error_errno(errno, "Failed to create a temporary directory: %m");

        const Manifest *old = bundle_manifest(b);
        _cleanup_free_ char *json = NULL;
        r = manifest_format(old, &json);
        if (r >= 0)
                r = manifest_parse(json, strlen(json), &m);
        if (r < 0)
                goto finish;
        /* bundle_create assigns payloads and key id afresh. */
        for (size_t i = 0; i < m->n_payloads; i++)
                free(m->payloads[i].name);
        free(m->payloads);
        m->payloads = NULL;
        m->n_payloads = 0;

        /* The manifest parser caps payloads at MANIFEST_PAYLOADS_MAX. */
        BundleInput in[MANIFEST_PAYLOADS_MAX];
        char paths[MANIFEST_PAYLOADS_MAX][sizeof(tmpdir) + 16];
        size_t n = old->n_payloads;
        if (n > ELEMENTSOF(in))
                r = -E2BIG;
        for (size_t i = 0; i < n && r >= 0; i++) {
                (void) snprintf(paths[i], sizeof(paths[i]), "%s/%zu", tmpdir, i);
                _cleanup_close_ int fd = open(paths[i], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
                if (fd < 0) {
                        r = -errno;
                        break;
                }
                r = bundle_extract_payload(b, old->payloads[i].name, fd, NULL, NULL);
                in[i] = (BundleInput) { old->payloads[i].name, paths[i] };
        }
        if (r >= 0)
                r = bundle_create(argv[1], m, in, n, key);
finish:
        for (size_t i = 0; i < MIN(old->n_payloads, (size_t) MANIFEST_PAYLOADS_MAX); i++) {
                char p[sizeof(tmpdir) + 16];
                (void) snprintf(p, sizeof(p), "%s/%zu", tmpdir, i);
                (void) unlink(p);
        }
        (void) rmdir(tmpdir);
        if (r < 0)
                return log_error_errno(r, "Failed to re-sign '%s': %s", argv[0], bundle_error_phase(r, true));
        printf("%s: signed with key %s\n", argv[1], key_id(key));
        return 0;
}

static int cmd_build(int argc, char **argv) {
        _cleanup_(spec_freep) Spec *spec = NULL;
        _cleanup_(key_freep) HullKey *key = NULL;
        SpecError e;
        int r;

        if (argc != 1)
                return log_error_errno(EINVAL, "Usage: hull-build build SPEC.yaml --key PRIVATE.pem");
        if (geteuid() != 0)
                return log_error_errno(EPERM, "hull-build build must run as root (it creates device nodes and file ownership in the image)");

        r = spec_load(argv[0], &spec, &e);
        if (r == -ENOENT)
                return log_error_errno(r, "Cannot read spec '%s': %m", argv[0]);
        if (r < 0 && e.message[0]) {
                if (e.line > 0)
                        return log_error_errno(r, "%s:%u:%u: %s", argv[0], e.line, e.column, e.message);
                return log_error_errno(r, "%s: %s", argv[0], e.message);
        }
        if (r < 0)
                return log_error_errno(r, "Failed to load spec '%s': %m", argv[0]);

        if (!arg_key)
                return log_error_errno(EINVAL, "No signing key: pass --key PRIVATE.pem (create one with 'hull-build keygen')");
        r = key_load_private(arg_key, &key);
        if (r < 0)
                return log_error_errno(r, "Failed to load signing key '%s': %m", arg_key);

        BuildContext c = {
                .spec = spec,
                .output_dir = arg_output,
                .cache_dir = arg_cache,
                .programs_dir = streq(pick_dir(arg_programs_dir, HULL_LIBEXECDIR, HULL_BUILD_PROGRAMS_DIR, "hull-init"),
                                      HULL_LIBEXECDIR)
                                        ? HULL_PROGRAMS_PATH
                                        : pick_dir(arg_programs_dir, HULL_LIBEXECDIR, HULL_BUILD_PROGRAMS_DIR, "hull-init"),
                .data_dir = pick_dir(arg_data_dir, HULL_DATADIR, HULL_BUILD_DATA_DIR, "hull-ready.service"),
                .key = key,
                .trusted_keys = arg_trust,
                .no_cache = arg_no_cache,
                .keep_work = arg_keep_work,
                .stop_after = arg_stop_after,
                .log_fd = -EBADF,
        };
        r = build_run(&c);
        build_context_done(&c);
        return r;
}

static int cmd_installer(int argc, char **argv) {
        char q[STRING_QUOTE_SIZE];

        if (argc != 0 || !arg_installer.image)
                return log_error_errno(EINVAL, "Usage: hull-build installer --image OUT/NAME-VER.img [--config MACHINE.json] [-o DIR]");
        if (arg_installer.disk && !streq(arg_installer.disk, "auto") &&
            (!string_has_prefix(arg_installer.disk, "/dev/") || !string_is_safe_token(arg_installer.disk + 5, "/-_.:+")))
                return log_error_errno(EINVAL, "--disk %s: expected auto or /dev/NAME", string_quote(q, arg_installer.disk));
        uint64_t v;
        if (arg_installer.root_size && !streq(arg_installer.root_size, "max") &&
            (parse_size(arg_installer.root_size, &v) < 0 || v == 0))
                return log_error_errno(EINVAL, "--root-size %s: expected max or a size such as 100G",
                                       string_quote(q, arg_installer.root_size));
        arg_installer.output_dir = arg_output;
        return installer_run(&arg_installer);
}

int main(int argc, char **argv) {
        enum { ARG_CACHE = 0x100, ARG_NO_CACHE, ARG_TRUST, ARG_KEYRING, ARG_KEEP_WORK, ARG_STOP_AFTER, ARG_PROGRAMS, ARG_DATA, ARG_VERSION, ARG_CHECK,
               ARG_IMAGE, ARG_CONFIG, ARG_DISK, ARG_ROOT_SIZE, ARG_PERSIST_MIN, ARG_FORCE,
               ARG_AUTH, ARG_CA, ARG_PLAIN_HTTP, ARG_CHUNK_SIZE };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "verbose", no_argument, NULL, 'v' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "output", required_argument, NULL, 'o' },
                { "key", required_argument, NULL, 'k' },
                { "cache", required_argument, NULL, ARG_CACHE },
                { "no-cache", no_argument, NULL, ARG_NO_CACHE },
                { "trust", required_argument, NULL, ARG_TRUST },
                { "keyring", required_argument, NULL, ARG_KEYRING },
                { "keep-work", no_argument, NULL, ARG_KEEP_WORK },
                { "stop-after", required_argument, NULL, ARG_STOP_AFTER },
                { "programs-dir", required_argument, NULL, ARG_PROGRAMS },
                { "data-dir", required_argument, NULL, ARG_DATA },
                { "check", no_argument, NULL, ARG_CHECK },
                { "image", required_argument, NULL, ARG_IMAGE },
                { "config", required_argument, NULL, ARG_CONFIG },
                { "disk", required_argument, NULL, ARG_DISK },
                { "root-size", required_argument, NULL, ARG_ROOT_SIZE },
                { "persist-min", required_argument, NULL, ARG_PERSIST_MIN },
                { "force", no_argument, NULL, ARG_FORCE },
                { "auth", required_argument, NULL, ARG_AUTH },
                { "ca", required_argument, NULL, ARG_CA },
                { "plain-http", no_argument, NULL, ARG_PLAIN_HTTP },
                { "chunk-size", required_argument, NULL, ARG_CHUNK_SIZE },
                {},
        };
        int c, r;

        log_set_prefix("hull-build");
        while ((c = getopt_long(argc, argv, "hvo:k:", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return EXIT_SUCCESS;
                case ARG_VERSION:
                        printf("hull-build %s\n", HULL_VERSION);
                        return EXIT_SUCCESS;
                case 'v':
                        log_set_max_level(LOG_DEBUG);
                        break;
                case 'o':
                        arg_output = optarg;
                        arg_output_set = true;
                        break;
                case 'k':
                        arg_key = optarg;
                        break;
                case ARG_CACHE:
                        arg_cache = optarg;
                        break;
                case ARG_NO_CACHE:
                        arg_no_cache = true;
                        break;
                case ARG_TRUST:
                        arg_trust = strv_append(arg_trust, optarg);
                        if (!arg_trust)
                                return log_oom(), EXIT_FAILURE;
                        break;
                case ARG_KEYRING:
                        arg_keyring = optarg;
                        break;
                case ARG_KEEP_WORK:
                        arg_keep_work = true;
                        break;
                case ARG_STOP_AFTER:
                        if (!streq(optarg, "packages") && !streq(optarg, "customise") && !streq(optarg, "seal"))
                                return log_error_errno(EINVAL, "--stop-after %s: expected packages, customise or seal",
                                                       optarg),
                                       EXIT_FAILURE;
                        arg_stop_after = optarg;
                        break;
                case ARG_PROGRAMS:
                        arg_programs_dir = optarg;
                        break;
                case ARG_DATA:
                        arg_data_dir = optarg;
                        break;
                case ARG_CHECK:
                        arg_check = true;
                        break;
                case ARG_IMAGE:
                        arg_installer.image = optarg;
                        break;
                case ARG_CONFIG:
                        arg_installer.config = optarg;
                        break;
                case ARG_DISK:
                        arg_installer.disk = optarg;
                        break;
                case ARG_ROOT_SIZE:
                        arg_installer.root_size = optarg;
                        break;
                case ARG_PERSIST_MIN:
                        if (parse_size(optarg, &arg_installer.persist_min) < 0 || arg_installer.persist_min == 0)
                                return log_error_errno(EINVAL, "--persist-min %s: expected a size such as 2G", optarg),
                                       EXIT_FAILURE;
                        break;
                case ARG_FORCE:
                        arg_installer.force = true;
                        break;
                case ARG_AUTH:
                        arg_auth = optarg;
                        break;
                case ARG_CA:
                        arg_ca = optarg;
                        break;
                case ARG_PLAIN_HTTP:
                        arg_plain_http = true;
                        break;
                case ARG_CHUNK_SIZE:
                        if (parse_size(optarg, &arg_chunk_size) < 0 || arg_chunk_size < 4096)
                                return log_error_errno(EINVAL, "--chunk-size %s: expected a size of at least 4K, such as 16M",
                                                       optarg),
                                       EXIT_FAILURE;
                        break;
                default:
                        return EXIT_FAILURE;
                }

        if (optind >= argc) {
                help();
                return EXIT_FAILURE;
        }
        const char *verb = argv[optind];
        int n = argc - optind - 1;
        char **rest = argv + optind + 1;

        if (streq(verb, "build"))
                r = cmd_build(n, rest);
        else if (streq(verb, "keygen"))
                r = cmd_keygen(n, rest);
        else if (streq(verb, "verify"))
                r = cmd_verify(n, rest);
        else if (streq(verb, "sign"))
                r = cmd_sign(n, rest);
        else if (streq(verb, "config"))
                r = cmd_config(n, rest, arg_output_set ? arg_output : NULL, arg_check);
        else if (streq(verb, "installer"))
                r = cmd_installer(n, rest);
        else if (streq(verb, "push"))
                r = cmd_push(n, rest);
        else
                r = log_error_errno(EINVAL, "Unknown command '%s' (commands: build, config, installer, keygen, push, sign, verify; see --help)", verb);

        strv_free(arg_trust);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
