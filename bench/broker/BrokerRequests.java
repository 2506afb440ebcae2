// Prints the broker's request counts per API (kafka.network RequestMetrics
// RequestsPerSec, cumulative) as "api count" lines, read over JMX from the
// URL given. Run as a single source file: java BrokerRequests.java URL
import java.util.Map;
import java.util.TreeMap;
import javax.management.MBeanServerConnection;
import javax.management.ObjectName;
import javax.management.remote.JMXConnector;
import javax.management.remote.JMXConnectorFactory;
import javax.management.remote.JMXServiceURL;

public class BrokerRequests {
    public static void main(String[] args) throws Exception {
        try (JMXConnector connector = JMXConnectorFactory.connect(new JMXServiceURL(args[0]))) {
            MBeanServerConnection server = connector.getMBeanServerConnection();
            Map<String, Long> counts = new TreeMap<>();
            ObjectName pattern = new ObjectName("kafka.network:type=RequestMetrics,name=RequestsPerSec,*");
            for (ObjectName name : server.queryNames(pattern, null)) {
                // One bean per API and version: add the versions up.
                counts.merge(name.getKeyProperty("request"), (Long) server.getAttribute(name, "Count"), Long::sum);
            }
            counts.forEach((api, count) -> System.out.println(api + " " + count));
        }
    }
}
