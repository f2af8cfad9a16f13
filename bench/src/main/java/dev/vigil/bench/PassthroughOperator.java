package dev.vigil.bench;

import dev.vigil.model.ModelBundle;
import dev.vigil.model.ModelCard;
import dev.vigil.scoring.DeviceStates;
import dev.vigil.scoring.ScoringSettings;
import dev.vigil.serde.AnomalyEvent;
import dev.vigil.serde.TelemetryEvent;
import dev.vigil.state.DeviceState;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.BoundedOneInput;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;

/**
 * The pipeline with the model switched off: the same source, parsing, shuffle, device state read
 * and write (through the scoring operator's state cache, written back before every checkpoint
 * barrier, as the job's), and sink, but no inference and no scoring. The ceiling the scoring
 * operators are measured against.
 */
public class PassthroughOperator extends AbstractStreamOperator<AnomalyEvent>
        implements OneInputStreamOperator<TelemetryEvent, AnomalyEvent>, BoundedOneInput {

    private final ModelBundle bundle;
    private final ScoringSettings settings;
    private transient DeviceStates states;
    private transient DeviceState[] both;

    public PassthroughOperator(ModelBundle bundle, ScoringSettings settings) {
        this.bundle = bundle;
        this.settings = settings;
    }

    @Override
    public void open() throws Exception {
        super.open();
        states = DeviceStates.cached(this, settings);
        both = new DeviceState[2];
    }

    @Override
    public void processElement(StreamRecord<TelemetryEvent> record) throws Exception {
        TelemetryEvent e = record.getValue();
        states.read(both);
        DeviceState s = both[0];
        if (s == null) {
            ModelCard card = bundle.card();
            s = DeviceState.fresh(card.version(), card.hiddenSize(), card.featureCount());
            both[0] = s;
        }
        s.steps++;
        s.lastTs = e.ts;
        states.write(both);
    }

    @Override
    public void prepareSnapshotPreBarrier(long checkpointId) throws Exception {
        states.writeBack();
        super.prepareSnapshotPreBarrier(checkpointId);
    }

    @Override
    public void endInput() throws Exception {
        states.writeBack();
    }
}
