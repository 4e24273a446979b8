// Applies the platform's bus access plan to a running broker with Kafka's own Admin client:
// SCRAM credentials for each principal, and exactly the plan's ACLs for the principals it names
// (missing bindings are created, stale ones deleted). Run by infra/bus_plan.py on the Kafka jars'
// classpath, compiled once by infra/kafka_jars.py (`source_program`), or as a source program:
//
//   java -cp '<jars>/*' BusAccess.java <admin client properties> <plan file>
//
// Plan lines (passwords are in the plan file, which is 0600 and deleted after the run):
//   user <name> <password>
//   allow <principal> <TOPIC|GROUP> <LITERAL|PREFIXED> <resource name> <operation>

import java.io.FileInputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Properties;
import java.util.Set;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialAlteration;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;

public class BusAccess {
    public static void main(String[] args) throws Exception {
        Properties config = new Properties();
        try (FileInputStream in = new FileInputStream(args[0])) {
            config.load(in);
        }
        List<UserScramCredentialAlteration> users = new ArrayList<>();
        Set<String> principals = new HashSet<>();
        Set<AclBinding> wanted = new HashSet<>();
        for (String line : Files.readAllLines(Path.of(args[1]))) {
            String[] f = line.trim().split(" ");
            if (f[0].equals("user")) {
                users.add(new UserScramCredentialUpsertion(
                    f[1], new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), f[2]));
                principals.add("User:" + f[1]);
            } else if (f[0].equals("allow")) {
                principals.add(f[1]);
                wanted.add(new AclBinding(
                    new ResourcePattern(ResourceType.valueOf(f[2]), f[4], PatternType.valueOf(f[3])),
                    new AccessControlEntry(f[1], "*", AclOperation.valueOf(f[5]), AclPermissionType.ALLOW)));
            }
        }
        try (Admin admin = Admin.create(config)) {
            admin.alterUserScramCredentials(users).all().get();
            Collection<AclBinding> existing = admin.describeAcls(AclBindingFilter.ANY).values().get();
            List<AclBindingFilter> stale = new ArrayList<>();
            for (AclBinding binding : existing) {
                if (principals.contains(binding.entry().principal()) && !wanted.contains(binding)) {
                    stale.add(binding.toFilter());
                }
            }
            if (!stale.isEmpty()) {
                admin.deleteAcls(stale).all().get();
            }
            List<AclBinding> missing = new ArrayList<>();
            for (AclBinding binding : wanted) {
                if (!existing.contains(binding)) {
                    missing.add(binding);
                }
            }
            if (!missing.isEmpty()) {
                admin.createAcls(missing).all().get();
            }
            System.out.printf("users %d, acls created %d, deleted %d%n", users.size(), missing.size(), stale.size());
        }
    }
}
