import workerpool from 'workerpool';

workerpool.worker({ echo: (task) => task });
